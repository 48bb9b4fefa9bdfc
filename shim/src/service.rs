//! The Task service: one container (its init process and exec'd
//! processes) run with runsc, exits reaped and published as events.

use crate::error::Error;
use crate::io::{self, ConsoleSocket, ProcIo, StdioPaths};
use crate::runsc::{self, ChildStdio, Runsc};
use containerd_shim::api;
use containerd_shim::event::Event;
use containerd_shim::monitor::{Subject, Topic};
use containerd_shim::protos::events::task::{
    TaskCreate, TaskDelete, TaskExecAdded, TaskExecStarted, TaskExit, TaskIO, TaskPaused,
    TaskResumed, TaskStart,
};
use containerd_shim::protos::protobuf::well_known_types::timestamp::Timestamp;
use containerd_shim::protos::protobuf::{Message, MessageDyn, MessageField};
use containerd_shim::protos::shim::oci::Options;
use containerd_shim::protos::types::mount::Mount;
use containerd_shim::protos::types::task::ProcessInfo;
use containerd_shim::publisher::RemotePublisher;
use containerd_shim::synchronous::monitor::monitor_subscribe;
use containerd_shim::{Context, ExitSignal, TtrpcContext, TtrpcResult};
use std::collections::{HashMap, VecDeque};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{channel, Sender};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

/// Exits of children we did not know yet (runsc commands, or a process
/// whose pid file we have not read yet), newest last.
const UNCLAIMED_MAX: usize = 256;
/// How long Delete waits for an exited process's output to drain.
const OUTPUT_WAIT: Duration = Duration::from_secs(10);
/// How long an exit waits for its output before it is reported anyway (a
/// background process may keep the output open).
const EXIT_OUTPUT_WAIT: Duration = Duration::from_secs(3);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Status {
    Created,
    Running,
    Paused,
    Stopped,
}

impl Status {
    fn api(self) -> api::Status {
        match self {
            Status::Created => api::Status::CREATED,
            Status::Running => api::Status::RUNNING,
            Status::Paused => api::Status::PAUSED,
            Status::Stopped => api::Status::STOPPED,
        }
    }
}

/// The init process or an exec'd one.
struct Proc {
    /// "" for init.
    exec_id: String,
    /// Host pid of what stands for it (the sandbox process for init, the
    /// exec-wait helper for an exec); 0 before it started.
    pid: i32,
    status: Status,
    exit_status: u32,
    exited_at: Option<Timestamp>,
    stdio: StdioPaths,
    io: Option<ProcIo>,
    /// An exec's process.json.
    spec: Option<PathBuf>,
    /// Reaped, its exit not yet reported (output still draining): its pid
    /// must not be signalled any more.
    reaped: bool,
    /// An exec's pid in the sandbox (its exec-wait helper's `--pid`).
    guest_pid: Option<i32>,
}

impl Proc {
    fn new(exec_id: &str, stdio: StdioPaths) -> Proc {
        Proc {
            exec_id: exec_id.to_string(),
            pid: 0,
            status: Status::Created,
            exit_status: 0,
            exited_at: None,
            stdio,
            io: None,
            spec: None,
            reaped: false,
            guest_pid: None,
        }
    }
}

struct Container {
    id: String,
    bundle: PathBuf,
    runsc: Runsc,
    /// bundle/rootfs when we mounted containerd's rootfs mounts there.
    rootfs: Option<PathBuf>,
    init: Proc,
    execs: HashMap<String, Proc>,
}

impl Container {
    fn proc_mut(&mut self, exec_id: &str) -> Result<&mut Proc, Error> {
        if exec_id.is_empty() {
            return Ok(&mut self.init);
        }
        self.execs
            .get_mut(exec_id)
            .ok_or_else(|| Error::NotFound(format!("exec {exec_id} not found")))
    }
}

#[derive(Default)]
struct State {
    container: Option<Container>,
    unclaimed: VecDeque<(i32, i32)>,
}

impl State {
    fn container(&mut self, id: &str) -> Result<&mut Container, Error> {
        match &mut self.container {
            Some(c) if c.id == id => Ok(c),
            _ => Err(Error::NotFound(format!("container {id} not found"))),
        }
    }

    /// The exit of `pid` if it was already reaped.
    fn take_unclaimed(&mut self, pid: i32) -> Option<i32> {
        let i = self.unclaimed.iter().rposition(|(p, _)| *p == pid)?;
        self.unclaimed.remove(i).map(|(_, c)| c)
    }
}

type Outgoing = (String, Box<dyn MessageDyn + Send>);

struct Inner {
    namespace: String,
    exit: Arc<ExitSignal>,
    state: Mutex<State>,
    changed: Condvar,
    events: Mutex<Sender<Outgoing>>,
}

/// The shim's Task service (cheap to clone).
#[derive(Clone)]
pub struct Service {
    inner: Arc<Inner>,
}

impl Service {
    /// Starts the event publisher and the exit watcher.
    pub fn new(namespace: &str, exit: Arc<ExitSignal>, publisher: RemotePublisher) -> Service {
        let (tx, rx) = channel::<Outgoing>();
        let ns = namespace.to_string();
        let spawned = std::thread::Builder::new()
            .name("events".into())
            .spawn(move || {
                for (topic, ev) in rx {
                    let ev: Box<dyn MessageDyn> = ev;
                    if let Err(e) = publisher.publish(Context::default(), &topic, &ns, ev) {
                        tracing::warn!("publishing {topic}: {e}");
                    }
                }
            });
        if let Err(e) = spawned {
            tracing::error!("starting the event publisher: {e}");
        }
        let svc = Service {
            inner: Arc::new(Inner {
                namespace: namespace.to_string(),
                exit,
                state: Mutex::new(State::default()),
                changed: Condvar::new(),
                events: Mutex::new(tx),
            }),
        };
        match monitor_subscribe(Topic::Pid) {
            Ok(sub) => {
                let s = svc.clone();
                let spawned = std::thread::Builder::new()
                    .name("exits".into())
                    .spawn(move || {
                        for ev in sub.rx.iter() {
                            if let Subject::Pid(pid) = ev.subject {
                                s.on_exit(pid, ev.exit_code);
                            }
                        }
                    });
                if let Err(e) = spawned {
                    tracing::error!("starting the exit watcher: {e}");
                }
            }
            Err(e) => tracing::error!("subscribing to exits: {e}"),
        }
        tracing::debug!("task service for namespace {}", svc.inner.namespace);
        svc
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.inner.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn publish<E: Event + MessageDyn + Send + 'static>(&self, ev: E) {
        let topic = ev.topic();
        let tx = self.inner.events.lock().unwrap_or_else(|e| e.into_inner());
        if tx.send((topic.clone(), Box::new(ev))).is_err() {
            tracing::warn!("event {topic} dropped: no publisher");
        }
    }

    /// A child was reaped: if it stands for one of our processes, that
    /// process has exited.
    fn on_exit(&self, pid: i32, code: i32) {
        let mut st = self.lock();
        let st = &mut *st;
        let Some(c) = st.container.as_mut() else {
            push_unclaimed(&mut st.unclaimed, pid, code);
            return;
        };
        let cid = c.id.clone();
        let found = std::iter::once(&mut c.init)
            .chain(c.execs.values_mut())
            .find(|p| p.pid == pid && p.status != Status::Stopped);
        match found {
            Some(p) => self.reaped(&cid, p, code),
            None => push_unclaimed(&mut st.unclaimed, pid, code),
        }
    }

    /// The process was reaped with `code`. Its exit is made known (state,
    /// Wait, TaskExit) once its output has drained into containerd's
    /// fifos, or after EXIT_OUTPUT_WAIT: a client (ctr) stops reading
    /// output it had not fully set up when it learns of the exit.
    fn reaped(&self, cid: &str, p: &mut Proc, code: i32) {
        tracing::info!(
            "container {cid} process {:?} (pid {}) exited with {code}",
            p.exec_id,
            p.pid
        );
        p.reaped = true;
        let output = p.io.as_ref().map(|io| io.output.clone());
        let (cid, exec_id, pid) = (cid.to_string(), p.exec_id.clone(), p.pid);
        let svc = self.clone();
        let finish = move || {
            if let Some(o) = output {
                if !o.wait(EXIT_OUTPUT_WAIT) {
                    tracing::info!("{cid} {exec_id:?}: exit reported with output still open");
                }
            }
            let mut st = svc.lock();
            let Some(c) = st.container.as_mut().filter(|c| c.id == cid) else {
                return;
            };
            let Ok(p) = c.proc_mut(&exec_id) else { return };
            if p.pid != pid || p.status == Status::Stopped {
                return;
            }
            let ev = exited(&cid, p, code);
            svc.publish(ev);
            svc.inner.changed.notify_all();
        };
        // Not under the state lock (ours is held): a thread of its own.
        if let Err(e) = std::thread::Builder::new()
            .name("exit".into())
            .spawn(finish)
        {
            tracing::error!("starting an exit thread: {e}: exit of {pid} not reported");
        }
    }

    /// Registers `pid` for the process, which may already have exited.
    fn started(&self, st: &mut State, exec_id: &str, pid: i32) -> Result<(), Error> {
        let code = st.take_unclaimed(pid);
        let Some(c) = st.container.as_mut() else {
            return Err(Error::NotFound("container gone".into()));
        };
        let cid = c.id.clone();
        let p = c.proc_mut(exec_id)?;
        p.pid = pid;
        if let Some(code) = code {
            self.reaped(&cid, p, code);
        }
        Ok(())
    }

    fn create_impl(&self, req: api::CreateTaskRequest) -> Result<api::CreateTaskResponse, Error> {
        let mut st = self.lock();
        if st.container.is_some() {
            return Err(Error::AlreadyExists(format!(
                "this shim already runs a container (asked for {})",
                req.id
            )));
        }
        check_id(&req.id)?;
        if !req.checkpoint.is_empty() {
            return Err(Error::Unimplemented("restoring a checkpoint".into()));
        }
        for p in [&req.stdin, &req.stdout, &req.stderr] {
            io::check_path(p)?;
        }
        let bundle = PathBuf::from(&req.bundle);
        if !bundle.is_absolute() {
            return Err(Error::InvalidArgument(format!(
                "bundle {}: not an absolute path",
                req.bundle
            )));
        }
        let opts = runtime_options(&req);
        let root = if opts.root.is_empty() {
            Path::new(runsc::DEFAULT_ROOT).join(&self.inner.namespace)
        } else {
            PathBuf::from(&opts.root)
        };
        let runsc = Runsc::new(runsc::find_binary(&opts.binary_name)?, root, &bundle);
        runsc.save(&bundle)?;
        let rootfs = mount_rootfs(&bundle, &req.rootfs)?;
        let stdio = StdioPaths {
            stdin: req.stdin.clone(),
            stdout: req.stdout.clone(),
            stderr: req.stderr.clone(),
            terminal: req.terminal,
        };
        let pid_file = bundle.join("init.pid");
        let r = (|| {
            let mut args: Vec<OsString> = vec!["create".into(), "--bundle".into()];
            args.push(bundle.clone().into());
            args.push("--pid-file".into());
            args.push(pid_file.clone().into());
            if stdio.terminal {
                let console = ConsoleSocket::new(&stdio)?;
                args.push("--console-socket".into());
                args.push(console.path.clone().into());
                args.push(req.id.clone().into());
                runsc.run(&args, ChildStdio::null()).map_err(failed)?;
                console.finish(&stdio)
            } else {
                let (child, pio) = io::pipes(&stdio)?;
                args.push(req.id.clone().into());
                runsc.run(&args, child).map_err(failed)?;
                Ok(pio)
            }
        })();
        let pio = match r {
            Ok(pio) => pio,
            Err(e) => {
                if let Some(r) = &rootfs {
                    unmount(r);
                }
                return Err(e);
            }
        };
        let pid = read_pid(&pid_file)?;
        let mut init = Proc::new("", stdio.clone());
        init.io = Some(pio);
        st.container = Some(Container {
            id: req.id.clone(),
            bundle: bundle.clone(),
            runsc,
            rootfs,
            init,
            execs: HashMap::new(),
        });
        self.started(&mut st, "", pid)?;
        tracing::info!("created container {} (sandbox pid {pid})", req.id);
        self.publish(TaskCreate {
            container_id: req.id.clone(),
            bundle: req.bundle.clone(),
            rootfs: req.rootfs.clone(),
            io: MessageField::some(TaskIO {
                stdin: stdio.stdin,
                stdout: stdio.stdout,
                stderr: stdio.stderr,
                terminal: stdio.terminal,
                ..Default::default()
            }),
            checkpoint: String::new(),
            pid: pid as u32,
            ..Default::default()
        });
        Ok(api::CreateTaskResponse {
            pid: pid as u32,
            ..Default::default()
        })
    }

    fn start_impl(&self, req: api::StartRequest) -> Result<api::StartResponse, Error> {
        let mut st = self.lock();
        let c = st.container(&req.id)?;
        if req.exec_id.is_empty() {
            if c.init.status != Status::Created {
                return Err(Error::FailedPrecondition(format!(
                    "container {} is not in the created state",
                    req.id
                )));
            }
            c.runsc
                .run(&["start".into(), req.id.clone().into()], ChildStdio::null())
                .map_err(failed)?;
            if c.init.status == Status::Created {
                c.init.status = Status::Running;
            }
            let pid = c.init.pid;
            // Published under the lock: TaskStart comes before TaskExit.
            self.publish(TaskStart {
                container_id: req.id.clone(),
                pid: pid as u32,
                ..Default::default()
            });
            return Ok(api::StartResponse {
                pid: pid as u32,
                ..Default::default()
            });
        }
        if c.init.status != Status::Running {
            return Err(Error::FailedPrecondition(format!(
                "container {} is not running",
                req.id
            )));
        }
        let bundle = c.bundle.clone();
        let runsc = c.runsc.clone();
        let p = c.proc_mut(&req.exec_id)?;
        if p.status != Status::Created {
            return Err(Error::FailedPrecondition(format!(
                "exec {} was already started",
                req.exec_id
            )));
        }
        let spec = p
            .spec
            .clone()
            .ok_or_else(|| Error::Internal("exec without a process spec".into()))?;
        let pid_file = bundle.join(format!("exec-{}.pid", req.exec_id));
        let mut args: Vec<OsString> = vec!["exec".into(), "--process".into()];
        args.push(spec.into());
        args.push("--detach".into());
        args.push("--pid-file".into());
        args.push(pid_file.clone().into());
        let stdio = p.stdio.clone();
        let pio = if stdio.terminal {
            let console = ConsoleSocket::new(&stdio)?;
            args.push("--console-socket".into());
            args.push(console.path.clone().into());
            args.push(req.id.clone().into());
            runsc.run(&args, ChildStdio::null()).map_err(failed)?;
            console.finish(&stdio)?
        } else {
            let (child, pio) = io::pipes(&stdio)?;
            args.push(req.id.clone().into());
            runsc.run(&args, child).map_err(failed)?;
            pio
        };
        let pid = read_pid(&pid_file)?;
        let _ = std::fs::remove_file(&pid_file);
        p.guest_pid = exec_wait_guest_pid(pid);
        p.io = Some(pio);
        p.status = Status::Running;
        self.started(&mut st, &req.exec_id, pid)?;
        self.publish(TaskExecStarted {
            container_id: req.id.clone(),
            exec_id: req.exec_id.clone(),
            pid: pid as u32,
            ..Default::default()
        });
        Ok(api::StartResponse {
            pid: pid as u32,
            ..Default::default()
        })
    }

    fn delete_impl(&self, req: api::DeleteRequest) -> Result<api::DeleteResponse, Error> {
        // The process's output first reaches containerd, which closes its
        // fifos once we answer (runc's shim waits likewise).
        let output = {
            let mut st = self.lock();
            let p = st.container(&req.id)?.proc_mut(&req.exec_id)?;
            match p.status {
                Status::Stopped => p.io.as_ref().map(|io| io.output.clone()),
                _ => None,
            }
        };
        if let Some(o) = output {
            if !o.wait(OUTPUT_WAIT) {
                tracing::warn!(
                    "{} {:?}: output still open after {OUTPUT_WAIT:?}",
                    req.id,
                    req.exec_id
                );
            }
        }
        let mut st = self.lock();
        let c = st.container(&req.id)?;
        if !req.exec_id.is_empty() {
            let p = c.proc_mut(&req.exec_id)?;
            if matches!(p.status, Status::Running | Status::Paused) {
                return Err(Error::FailedPrecondition(format!(
                    "exec {} is still running",
                    req.exec_id
                )));
            }
            let resp = delete_response(p);
            if let Some(spec) = &p.spec {
                let _ = std::fs::remove_file(spec);
            }
            c.execs.remove(&req.exec_id);
            return Ok(resp);
        }
        if matches!(c.init.status, Status::Running | Status::Paused) {
            return Err(Error::FailedPrecondition(format!(
                "container {} is still running: kill it first",
                req.id
            )));
        }
        if let Err(e) = c.runsc.run(
            &["delete".into(), "--force".into(), req.id.clone().into()],
            ChildStdio::null(),
        ) {
            match e {
                Error::NotFound(_) => {}
                e => return Err(e),
            }
        }
        if let Some(r) = &c.rootfs {
            unmount(r);
        }
        let resp = delete_response(&c.init);
        self.publish(TaskDelete {
            container_id: req.id.clone(),
            pid: resp.pid,
            exit_status: resp.exit_status,
            exited_at: resp.exited_at.clone(),
            id: req.id.clone(),
            ..Default::default()
        });
        st.container = None;
        self.inner.changed.notify_all();
        tracing::info!("deleted container {}", req.id);
        Ok(resp)
    }

    fn exec_impl(&self, req: api::ExecProcessRequest) -> Result<(), Error> {
        let mut st = self.lock();
        let c = st.container(&req.id)?;
        check_id(&req.exec_id)?;
        if c.execs.contains_key(&req.exec_id) {
            return Err(Error::AlreadyExists(format!(
                "exec {} already exists",
                req.exec_id
            )));
        }
        if c.init.status != Status::Running {
            return Err(Error::FailedPrecondition(format!(
                "container {} is not running",
                req.id
            )));
        }
        for p in [&req.stdin, &req.stdout, &req.stderr] {
            io::check_path(p)?;
        }
        let Some(spec) = req.spec.as_ref() else {
            return Err(Error::InvalidArgument("exec without a process spec".into()));
        };
        let path = c.bundle.join(format!("exec-{}.json", req.exec_id));
        std::fs::write(&path, &spec.value)
            .map_err(|e| Error::Internal(format!("{}: {e}", path.display())))?;
        let mut p = Proc::new(
            &req.exec_id,
            StdioPaths {
                stdin: req.stdin.clone(),
                stdout: req.stdout.clone(),
                stderr: req.stderr.clone(),
                terminal: req.terminal,
            },
        );
        p.spec = Some(path);
        c.execs.insert(req.exec_id.clone(), p);
        self.publish(TaskExecAdded {
            container_id: req.id.clone(),
            exec_id: req.exec_id.clone(),
            ..Default::default()
        });
        Ok(())
    }

    fn kill_impl(&self, req: api::KillRequest) -> Result<(), Error> {
        let mut st = self.lock();
        let c = st.container(&req.id)?;
        let runsc = c.runsc.clone();
        let p = c.proc_mut(&req.exec_id)?;
        if p.status == Status::Stopped || p.reaped {
            return Err(Error::NotFound("process already finished".into()));
        }
        let sig = i32::try_from(req.signal)
            .map_err(|_| Error::InvalidArgument(format!("signal {}", req.signal)))?;
        if req.exec_id.is_empty() {
            let mut args: Vec<OsString> = vec!["kill".into()];
            if req.all {
                args.push("--all".into());
            }
            args.push(req.id.clone().into());
            args.push(sig.to_string().into());
            return runsc.run(&args, ChildStdio::null());
        }
        if p.pid <= 0 {
            return Err(Error::FailedPrecondition(format!(
                "exec {} has not started",
                req.exec_id
            )));
        }
        // Straight to the guest process through the sandbox's control
        // socket (SIGKILL and SIGSTOP cannot go through the helper).
        if let Some(gp) = p.guest_pid {
            match signal_guest(&runsc, &req.id, gp, sig) {
                Ok(()) => return Ok(()),
                Err(e) => tracing::info!(
                    "signal {sig} to exec {} (guest pid {gp}): {e}; signalling its helper",
                    req.exec_id
                ),
            }
        }
        // Else the exec-wait helper forwards what it gets to the guest
        // process (all but SIGKILL and SIGSTOP, which end or stop it).
        // SAFETY: kill(2) of our own child, not yet reaped (not Stopped).
        if unsafe { libc::kill(p.pid, sig) } < 0 {
            return Err(Error::Internal(format!(
                "signalling exec {}: {}",
                req.exec_id,
                std::io::Error::last_os_error()
            )));
        }
        Ok(())
    }

    fn state_impl(&self, req: api::StateRequest) -> Result<api::StateResponse, Error> {
        let mut st = self.lock();
        let c = st.container(&req.id)?;
        let bundle = c.bundle.to_string_lossy().into_owned();
        let p = c.proc_mut(&req.exec_id)?;
        Ok(api::StateResponse {
            id: if req.exec_id.is_empty() {
                req.id.clone()
            } else {
                req.exec_id.clone()
            },
            bundle,
            pid: p.pid.max(0) as u32,
            status: p.status.api().into(),
            stdin: p.stdio.stdin.clone(),
            stdout: p.stdio.stdout.clone(),
            stderr: p.stdio.stderr.clone(),
            terminal: p.stdio.terminal,
            exit_status: p.exit_status,
            exited_at: p.exited_at.clone().into(),
            exec_id: req.exec_id.clone(),
            ..Default::default()
        })
    }

    fn wait_impl(&self, req: api::WaitRequest) -> Result<api::WaitResponse, Error> {
        let mut st = self.lock();
        loop {
            let c = st.container(&req.id)?;
            let p = c.proc_mut(&req.exec_id)?;
            if p.status == Status::Stopped {
                return Ok(api::WaitResponse {
                    exit_status: p.exit_status,
                    exited_at: p.exited_at.clone().into(),
                    ..Default::default()
                });
            }
            st = self
                .inner
                .changed
                .wait(st)
                .unwrap_or_else(|e| e.into_inner());
        }
    }

    fn pause_resume(&self, id: &str, pause: bool) -> Result<(), Error> {
        let mut st = self.lock();
        let c = st.container(id)?;
        let (want, to, cmd) = if pause {
            (Status::Running, Status::Paused, "pause")
        } else {
            (Status::Paused, Status::Running, "resume")
        };
        if c.init.status != want {
            return Err(Error::FailedPrecondition(format!(
                "container {id} is not {}",
                if pause { "running" } else { "paused" }
            )));
        }
        c.runsc
            .run(&[cmd.into(), id.to_string().into()], ChildStdio::null())?;
        c.init.status = to;
        for p in c.execs.values_mut() {
            if p.status == want {
                p.status = to;
            }
        }
        if pause {
            self.publish(TaskPaused {
                container_id: id.to_string(),
                ..Default::default()
            });
        } else {
            self.publish(TaskResumed {
                container_id: id.to_string(),
                ..Default::default()
            });
        }
        Ok(())
    }

    fn pids_impl(&self, req: api::PidsRequest) -> Result<api::PidsResponse, Error> {
        let mut st = self.lock();
        let c = st.container(&req.id)?;
        let mut pids: Vec<i32> = Vec::new();
        if c.init.status != Status::Stopped {
            let out = c.runsc.output(&[
                "ps".into(),
                "--format".into(),
                "json".into(),
                req.id.clone().into(),
            ])?;
            pids = serde_json::from_slice(&out)
                .map_err(|e| Error::Internal(format!("runsc ps: {e}")))?;
        }
        for p in c.execs.values() {
            if p.pid > 0 && p.status != Status::Stopped && !pids.contains(&p.pid) {
                pids.push(p.pid);
            }
        }
        Ok(api::PidsResponse {
            processes: pids
                .into_iter()
                .map(|pid| ProcessInfo {
                    pid: pid as u32,
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        })
    }

    fn update_impl(&self, req: api::UpdateTaskRequest) -> Result<(), Error> {
        let mut st = self.lock();
        let c = st.container(&req.id)?;
        let Some(res) = req.resources.as_ref() else {
            return Err(Error::InvalidArgument("update without resources".into()));
        };
        let path = c.bundle.join("update-resources.json");
        std::fs::write(&path, &res.value)
            .map_err(|e| Error::Internal(format!("{}: {e}", path.display())))?;
        let r = c.runsc.run(
            &[
                "update".into(),
                "--resources".into(),
                path.clone().into(),
                req.id.clone().into(),
            ],
            ChildStdio::null(),
        );
        let _ = std::fs::remove_file(&path);
        r
    }

    fn io_of<T>(
        &self,
        id: &str,
        exec_id: &str,
        f: impl FnOnce(&ProcIo) -> Result<T, Error>,
    ) -> Result<Option<T>, Error> {
        let mut st = self.lock();
        let c = st.container(id)?;
        let p = c.proc_mut(exec_id)?;
        p.io.as_ref().map(f).transpose()
    }
}

/// The guest pid an exec-wait helper waits for (`runsc ... exec-wait
/// --pid N ID`), from its command line.
fn exec_wait_guest_pid(helper: i32) -> Option<i32> {
    let cmdline = std::fs::read(format!("/proc/{helper}/cmdline")).ok()?;
    let mut args = cmdline.split(|b| *b == 0);
    args.by_ref().find(|a| *a == b"--pid")?;
    std::str::from_utf8(args.next()?).ok()?.parse().ok()
}

/// Sends `sig` to guest process `pid` of container `id` through the
/// sandbox's control socket (`<root>/<id>/control.sock`: one JSON request
/// line, one JSON reply line; runsc_cli::oci::control's `SignalProcess`,
/// spoken here so the shim does not link the sentry). A long path goes
/// through /proc/self/fd, as runsc does.
fn signal_guest(runsc: &Runsc, id: &str, pid: i32, sig: i32) -> Result<(), Error> {
    use std::io::{BufRead, BufReader, Write};
    use std::os::fd::AsRawFd;
    let err = |e: std::io::Error| Error::Internal(format!("the sandbox's control socket: {e}"));
    let dir = std::fs::File::open(runsc.root.join(id)).map_err(err)?;
    let sock = format!("/proc/self/fd/{}/control.sock", dir.as_raw_fd());
    let stream = std::os::unix::net::UnixStream::connect(&sock).map_err(err)?;
    let limit = Some(Duration::from_secs(10));
    stream.set_read_timeout(limit).map_err(err)?;
    stream.set_write_timeout(limit).map_err(err)?;
    let mut line = serde_json::json!({ "op": "signalprocess", "pid": pid, "signal": sig })
        .to_string()
        .into_bytes();
    line.push(b'\n');
    (&stream).write_all(&line).map_err(err)?;
    let mut reply = String::new();
    BufReader::new(&stream).read_line(&mut reply).map_err(err)?;
    let v: serde_json::Value = serde_json::from_str(&reply)
        .map_err(|e| Error::Internal(format!("the sandbox's reply {reply:?}: {e}")))?;
    match v.get("error").and_then(|e| e.as_str()) {
        Some(e) => Err(Error::Internal(e.to_string())),
        None => Ok(()),
    }
}

/// A process that could not be created or started: whatever runsc said,
/// not a missing task (NotFound means that to containerd).
fn failed(e: Error) -> Error {
    match e {
        Error::NotFound(m) => Error::Internal(m),
        e => e,
    }
}

fn push_unclaimed(q: &mut VecDeque<(i32, i32)>, pid: i32, code: i32) {
    if q.len() >= UNCLAIMED_MAX {
        q.pop_front();
    }
    q.push_back((pid, code));
}

/// Marks `p` exited with `code`; the TaskExit event to publish.
fn exited(cid: &str, p: &mut Proc, code: i32) -> TaskExit {
    let now = Timestamp::now();
    p.status = Status::Stopped;
    p.exit_status = code as u32;
    p.exited_at = Some(now.clone());
    TaskExit {
        container_id: cid.to_string(),
        id: if p.exec_id.is_empty() {
            cid.to_string()
        } else {
            p.exec_id.clone()
        },
        pid: p.pid.max(0) as u32,
        exit_status: p.exit_status,
        exited_at: MessageField::some(now),
        ..Default::default()
    }
}

fn delete_response(p: &Proc) -> api::DeleteResponse {
    api::DeleteResponse {
        pid: p.pid.max(0) as u32,
        exit_status: p.exit_status,
        exited_at: p.exited_at.clone().into(),
        ..Default::default()
    }
}

/// Container and exec ids become file names: no separators or dots only.
fn check_id(id: &str) -> Result<(), Error> {
    let ok = !id.is_empty()
        && id.len() <= 256
        && id != "."
        && id != ".."
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '+'));
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidArgument(format!("invalid id {id:?}")))
    }
}

/// runc's options (BinaryName, Root) when containerd passes them.
fn runtime_options(req: &api::CreateTaskRequest) -> Options {
    let Some(any) = req.options.as_ref() else {
        return Options::default();
    };
    if any.type_url.ends_with("containerd.runc.v1.Options") {
        match Options::parse_from_bytes(&any.value) {
            Ok(o) => return o,
            Err(e) => tracing::warn!("runtime options: {e}"),
        }
    } else {
        tracing::debug!("runtime options of type {} ignored", any.type_url);
    }
    Options::default()
}

/// Mounts containerd's rootfs mounts (a snapshot) on bundle/rootfs.
fn mount_rootfs(bundle: &Path, mounts: &[Mount]) -> Result<Option<PathBuf>, Error> {
    if mounts.is_empty() {
        return Ok(None);
    }
    let target = bundle.join("rootfs");
    std::fs::create_dir_all(&target)
        .map_err(|e| Error::Internal(format!("{}: {e}", target.display())))?;
    for m in mounts {
        let r = containerd_shim::mount::mount_rootfs(
            Some(m.type_.as_str()).filter(|t| !t.is_empty()),
            Some(m.source.as_str()).filter(|s| !s.is_empty()),
            &m.options,
            &target,
        );
        if let Err(e) = r {
            unmount(&target);
            return Err(Error::Internal(format!(
                "mounting the rootfs ({} {}): {e}",
                m.type_, m.source
            )));
        }
    }
    Ok(Some(target))
}

/// Unmounts everything at and under `target`.
pub fn unmount(target: &Path) {
    let t = target.to_string_lossy();
    if let Err(e) = containerd_shim::mount::umount_recursive(Some(&t), libc::MNT_DETACH) {
        tracing::warn!("unmounting {t}: {e}");
    }
}

fn read_pid(path: &Path) -> Result<i32, Error> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::Internal(format!("{}: {e}", path.display())))?;
    text.trim()
        .parse()
        .map_err(|_| Error::Internal(format!("{}: not a pid: {text:?}", path.display())))
}

fn log_err<T>(what: &str, r: Result<T, Error>) -> TtrpcResult<T> {
    r.map_err(|e| {
        tracing::info!("{what}: {e}");
        e.into()
    })
}

impl containerd_shim::Task for Service {
    fn state(&self, _: &TtrpcContext, req: api::StateRequest) -> TtrpcResult<api::StateResponse> {
        log_err("state", self.state_impl(req))
    }

    fn create(
        &self,
        _: &TtrpcContext,
        req: api::CreateTaskRequest,
    ) -> TtrpcResult<api::CreateTaskResponse> {
        tracing::info!("create {} in {}", req.id, req.bundle);
        log_err("create", self.create_impl(req))
    }

    fn start(&self, _: &TtrpcContext, req: api::StartRequest) -> TtrpcResult<api::StartResponse> {
        tracing::info!("start {} {:?}", req.id, req.exec_id);
        log_err("start", self.start_impl(req))
    }

    fn delete(
        &self,
        _: &TtrpcContext,
        req: api::DeleteRequest,
    ) -> TtrpcResult<api::DeleteResponse> {
        tracing::info!("delete {} {:?}", req.id, req.exec_id);
        log_err("delete", self.delete_impl(req))
    }

    fn pids(&self, _: &TtrpcContext, req: api::PidsRequest) -> TtrpcResult<api::PidsResponse> {
        log_err("pids", self.pids_impl(req))
    }

    fn pause(&self, _: &TtrpcContext, req: api::PauseRequest) -> TtrpcResult<api::Empty> {
        tracing::info!("pause {}", req.id);
        log_err("pause", self.pause_resume(&req.id, true)).map(|()| api::Empty::new())
    }

    fn resume(&self, _: &TtrpcContext, req: api::ResumeRequest) -> TtrpcResult<api::Empty> {
        tracing::info!("resume {}", req.id);
        log_err("resume", self.pause_resume(&req.id, false)).map(|()| api::Empty::new())
    }

    fn checkpoint(
        &self,
        _: &TtrpcContext,
        _: api::CheckpointTaskRequest,
    ) -> TtrpcResult<api::Empty> {
        Err(Error::Unimplemented("checkpoint is not supported".into()).into())
    }

    fn kill(&self, _: &TtrpcContext, req: api::KillRequest) -> TtrpcResult<api::Empty> {
        tracing::info!("kill {} {:?} signal {}", req.id, req.exec_id, req.signal);
        log_err("kill", self.kill_impl(req)).map(|()| api::Empty::new())
    }

    fn exec(&self, _: &TtrpcContext, req: api::ExecProcessRequest) -> TtrpcResult<api::Empty> {
        tracing::info!("exec {} {:?}", req.id, req.exec_id);
        log_err("exec", self.exec_impl(req)).map(|()| api::Empty::new())
    }

    fn resize_pty(&self, _: &TtrpcContext, req: api::ResizePtyRequest) -> TtrpcResult<api::Empty> {
        let r = self.io_of(&req.id, &req.exec_id, |io| io.resize(req.width, req.height));
        log_err("resize", r).map(|_| api::Empty::new())
    }

    fn close_io(&self, _: &TtrpcContext, req: api::CloseIORequest) -> TtrpcResult<api::Empty> {
        let r = self.io_of(&req.id, &req.exec_id, |io| {
            if req.stdin {
                io.close_stdin();
            }
            Ok(())
        });
        log_err("close io", r).map(|_| api::Empty::new())
    }

    fn update(&self, _: &TtrpcContext, req: api::UpdateTaskRequest) -> TtrpcResult<api::Empty> {
        tracing::info!("update {}", req.id);
        log_err("update", self.update_impl(req)).map(|()| api::Empty::new())
    }

    fn wait(&self, _: &TtrpcContext, req: api::WaitRequest) -> TtrpcResult<api::WaitResponse> {
        log_err("wait", self.wait_impl(req))
    }

    fn stats(&self, _: &TtrpcContext, req: api::StatsRequest) -> TtrpcResult<api::StatsResponse> {
        log_err("stats", crate::stats::stats(self, &req.id))
    }

    fn connect(
        &self,
        _: &TtrpcContext,
        req: api::ConnectRequest,
    ) -> TtrpcResult<api::ConnectResponse> {
        let mut st = self.lock();
        let task_pid = st
            .container(&req.id)
            .map(|c| c.init.pid.max(0) as u32)
            .unwrap_or(0);
        Ok(api::ConnectResponse {
            shim_pid: std::process::id(),
            task_pid,
            version: env!("CARGO_PKG_VERSION").to_string(),
            ..Default::default()
        })
    }

    fn shutdown(&self, _: &TtrpcContext, req: api::ShutdownRequest) -> TtrpcResult<api::Empty> {
        let st = self.lock();
        if st.container.is_some() && !req.now {
            tracing::debug!("shutdown while a container exists: ignored");
            return Ok(api::Empty::new());
        }
        tracing::info!("shutting down");
        self.inner.exit.signal();
        Ok(api::Empty::new())
    }
}

impl Service {
    /// `runsc events --stats` for the stats module.
    pub fn runsc_stats(&self, id: &str) -> Result<Vec<u8>, Error> {
        let mut st = self.lock();
        let c = st.container(id)?;
        c.runsc
            .output(&["events".into(), "--stats".into(), id.to_string().into()])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_that_are_file_names_only() {
        assert!(check_id("abc-1_2.x").is_ok());
        for bad in ["", ".", "..", "a/b", "a b", "x\0"] {
            assert!(check_id(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn unclaimed_exits_are_bounded_and_found() {
        let mut st = State::default();
        for pid in 0..(UNCLAIMED_MAX as i32 + 10) {
            push_unclaimed(&mut st.unclaimed, pid, pid % 7);
        }
        assert_eq!(st.unclaimed.len(), UNCLAIMED_MAX);
        assert_eq!(st.take_unclaimed(3), None);
        assert_eq!(st.take_unclaimed(20), Some(20 % 7));
        assert_eq!(st.take_unclaimed(20), None);
    }
}
