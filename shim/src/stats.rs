//! Stats: `runsc events --stats` (runc's stats JSON) as containerd's
//! cgroup metrics.

use crate::error::Error;
use crate::service::Service;
use containerd_shim::api;

pub fn stats(svc: &Service, id: &str) -> Result<api::StatsResponse, Error> {
    let _ = svc.runsc_stats(id)?;
    Err(Error::Unimplemented("stats".into()))
}
