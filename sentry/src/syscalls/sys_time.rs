//! Time system calls: clocks, gettimeofday, time, nanosleep.

use super::sys_thread::read_duration;
use super::Args;
use crate::errno::{Errno, KResult};
use crate::kernel::task::CurrentTask;
use std::time::{Duration, Instant};

/// The host's reading of a wall or monotonic clock (these need no
/// virtualization: the sandbox shares the host's time).
pub fn host_clock(clock: i32) -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid out pointer; clock ids here are the host's own.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    Duration::new(ts.tv_sec.max(0) as u64, ts.tv_nsec as u32)
}

fn clock_value(t: &CurrentTask, clock: i32) -> KResult<Duration> {
    match clock {
        libc::CLOCK_REALTIME | libc::CLOCK_REALTIME_COARSE | libc::CLOCK_TAI => {
            Ok(host_clock(clock))
        }
        libc::CLOCK_MONOTONIC
        | libc::CLOCK_MONOTONIC_RAW
        | libc::CLOCK_MONOTONIC_COARSE
        | libc::CLOCK_BOOTTIME => Ok(host_clock(clock)),
        libc::CLOCK_PROCESS_CPUTIME_ID => Ok(Duration::from_nanos(t.kernel.group_cpu_ns(&t.tg))),
        libc::CLOCK_THREAD_CPUTIME_ID => Ok(Duration::from_nanos(t.cpu_time_ns())),
        _ => Err(Errno::EINVAL),
    }
}

fn write_timespec(t: &CurrentTask, addr: u64, d: Duration) -> KResult<()> {
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&(d.as_secs() as i64).to_le_bytes());
    b[8..].copy_from_slice(&(d.subsec_nanos() as i64).to_le_bytes());
    t.mm.copy_out(addr, &b)
}

pub fn clock_gettime(t: &mut CurrentTask, a: &Args) -> KResult<u64> {
    let v = clock_value(t, a[0] as i32)?;
    write_timespec(t, a[1], v)?;
    Ok(0)
}

pub fn clock_getres(t: &mut CurrentTask, a: &Args) -> KResult<u64> {
    let clock = a[0] as i32;
    clock_value(t, clock)?;
    if a[1] != 0 {
        let res = match clock {
            libc::CLOCK_REALTIME_COARSE | libc::CLOCK_MONOTONIC_COARSE => Duration::from_millis(4),
            _ => Duration::from_nanos(1),
        };
        write_timespec(t, a[1], res)?;
    }
    Ok(0)
}

pub fn gettimeofday(t: &mut CurrentTask, a: &Args) -> KResult<u64> {
    if a[0] != 0 {
        let d = host_clock(libc::CLOCK_REALTIME);
        let mut b = [0u8; 16];
        b[..8].copy_from_slice(&(d.as_secs() as i64).to_le_bytes());
        b[8..].copy_from_slice(&(d.subsec_micros() as i64).to_le_bytes());
        t.mm.copy_out(a[0], &b)?;
    }
    if a[1] != 0 {
        t.mm.copy_out(a[1], &[0u8; 8])?;
    }
    Ok(0)
}

pub fn time(t: &mut CurrentTask, a: &Args) -> KResult<u64> {
    let s = host_clock(libc::CLOCK_REALTIME).as_secs();
    if a[0] != 0 {
        t.mm.write_u64(a[0], s)?;
    }
    Ok(s)
}

/// Sleeps `d`; on a signal writes the remaining time to `rem` (if non-zero).
fn sleep_for(t: &CurrentTask, d: Duration, rem: u64) -> KResult<u64> {
    let deadline = Instant::now() + d;
    match t.task.sleep_until(Some(deadline)) {
        Ok(()) => Ok(0),
        Err(_) => {
            if rem != 0 {
                write_timespec(t, rem, deadline.saturating_duration_since(Instant::now()))?;
            }
            Err(Errno::EINTR)
        }
    }
}

pub fn nanosleep(t: &mut CurrentTask, a: &Args) -> KResult<u64> {
    let d = read_duration(t, a[0])?;
    sleep_for(t, d, a[1])
}

pub fn clock_nanosleep(t: &mut CurrentTask, a: &Args) -> KResult<u64> {
    let clock = a[0] as i32;
    let flags = a[1] as i32;
    if clock == libc::CLOCK_THREAD_CPUTIME_ID {
        return Err(Errno::EINVAL);
    }
    let now = clock_value(t, clock)?;
    let d = read_duration(t, a[2])?;
    if flags & libc::TIMER_ABSTIME != 0 {
        match t
            .task
            .sleep_until(Some(Instant::now() + d.saturating_sub(now)))
        {
            Ok(()) => Ok(0),
            Err(_) => Err(Errno::ERESTARTNOHAND),
        }
    } else {
        sleep_for(t, d, a[3])
    }
}
