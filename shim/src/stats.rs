//! Stats: `runsc events --stats` (runc's stats JSON for the sandbox's
//! cgroup, which holds every sandbox process) as containerd's cgroup v1
//! metrics (`io.containerd.cgroups.v1.Metrics`, which `ctr task metrics`
//! and the CRI read whatever the host's cgroup version).

use crate::error::Error;
use crate::service::Service;
use containerd_shim::api;
use containerd_shim::protos::cgroups::metrics::{
    CPUStat, CPUUsage, MemoryEntry, MemoryStat, Metrics, PidsStat, Throttle,
};
use containerd_shim::protos::protobuf::well_known_types::any::Any;
use containerd_shim::protos::protobuf::{Message, MessageField, MessageFull};
use serde_json::Value;

pub fn stats(svc: &Service, id: &str) -> Result<api::StatsResponse, Error> {
    let out = svc.runsc_stats(id)?;
    let text = String::from_utf8_lossy(&out);
    let line = text
        .lines()
        .find(|l| !l.trim().is_empty())
        .ok_or_else(|| Error::Internal("runsc events --stats printed nothing".into()))?;
    let ev: Value = serde_json::from_str(line)
        .map_err(|e| Error::Internal(format!("runsc events --stats: {e}")))?;
    let m = metrics(ev.get("data").unwrap_or(&Value::Null));
    let value = m
        .write_to_bytes()
        .map_err(|e| Error::Internal(format!("encoding metrics: {e}")))?;
    Ok(api::StatsResponse {
        stats: MessageField::some(Any {
            type_url: Metrics::descriptor().full_name().to_string(),
            value,
            ..Default::default()
        }),
        ..Default::default()
    })
}

fn u(v: &Value, path: &[&str]) -> u64 {
    let mut v = v;
    for k in path {
        match v.get(k) {
            Some(x) => v = x,
            None => return 0,
        }
    }
    v.as_u64().unwrap_or(0)
}

/// runc's stats (`data` of a stats event) as cgroup v1 metrics.
fn metrics(d: &Value) -> Metrics {
    let raw = |k: &str| u(d, &["memory", "raw", k]);
    Metrics {
        pids: MessageField::some(PidsStat {
            current: u(d, &["pids", "current"]),
            limit: u(d, &["pids", "limit"]),
            ..Default::default()
        }),
        cpu: MessageField::some(CPUStat {
            usage: MessageField::some(CPUUsage {
                total: u(d, &["cpu", "usage", "total"]),
                kernel: u(d, &["cpu", "usage", "kernel"]),
                user: u(d, &["cpu", "usage", "user"]),
                per_cpu: d
                    .pointer("/cpu/usage/percpu")
                    .and_then(Value::as_array)
                    .map(|a| a.iter().filter_map(Value::as_u64).collect())
                    .unwrap_or_default(),
                ..Default::default()
            }),
            throttling: MessageField::some(Throttle {
                periods: u(d, &["cpu", "throttling", "periods"]),
                throttled_periods: u(d, &["cpu", "throttling", "throttledPeriods"]),
                throttled_time: u(d, &["cpu", "throttling", "throttledTime"]),
                ..Default::default()
            }),
            ..Default::default()
        }),
        memory: MessageField::some(MemoryStat {
            cache: u(d, &["memory", "cache"]),
            rss: raw("rss").max(raw("anon")),
            mapped_file: raw("mapped_file").max(raw("file_mapped")),
            pg_fault: raw("pgfault"),
            pg_maj_fault: raw("pgmajfault"),
            usage: MessageField::some(MemoryEntry {
                limit: u(d, &["memory", "usage", "limit"]),
                usage: u(d, &["memory", "usage", "usage"]),
                max: u(d, &["memory", "usage", "max"]),
                failcnt: u(d, &["memory", "usage", "failcnt"]),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runc_stats_become_v1_metrics() {
        let d = serde_json::json!({
            "cpu": { "usage": { "total": 5, "kernel": 2, "user": 3, "percpu": [1, 4] },
                     "throttling": { "periods": 7, "throttledPeriods": 1, "throttledTime": 9 } },
            "memory": { "cache": 10, "usage": { "limit": 100, "usage": 50, "max": 60, "failcnt": 0 },
                        "raw": { "rss": 40 } },
            "pids": { "current": 3, "limit": 0 },
        });
        let m = metrics(&d);
        assert_eq!(m.pids.current, 3);
        assert_eq!(m.cpu.usage.total, 5);
        assert_eq!(m.cpu.usage.per_cpu, vec![1, 4]);
        assert_eq!(m.cpu.throttling.throttled_time, 9);
        assert_eq!(m.memory.usage.usage, 50);
        assert_eq!(m.memory.rss, 40);
        assert_eq!(
            Metrics::descriptor().full_name(),
            "io.containerd.cgroups.v1.Metrics"
        );
        // Missing fields are zeros, not errors.
        assert_eq!(metrics(&Value::Null).memory.usage.limit, 0);
    }
}
