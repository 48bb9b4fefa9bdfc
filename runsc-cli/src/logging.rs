//! Logging: to stderr, or with `--log FILE` to that file (text or JSON
//! lines, which containerd reads back for a failed command's error).

use crate::oci::GlobalOpts;
use std::io::Write;

/// Sets up `tracing`: `--debug` or `RUNSC_LOG=...` turn detail on.
pub fn init(g: &GlobalOpts) {
    let level = if g.debug { "debug" } else { "warn" };
    let filter = tracing_subscriber::EnvFilter::try_from_env("RUNSC_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let file = g.log.as_ref().and_then(|p| {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(p)
            .ok()
    });
    let b = tracing_subscriber::fmt().with_env_filter(filter);
    match (file, g.log_format == "json") {
        (Some(f), true) => b.json().with_writer(std::sync::Mutex::new(f)).init(),
        (Some(f), false) => b
            .with_ansi(false)
            .with_writer(std::sync::Mutex::new(f))
            .init(),
        (None, _) => b.with_writer(std::io::stderr).init(),
    }
}

/// Reports a command's failure: on stderr, and as the last line of the log
/// file in its format (`{"level":"error","msg":...}` for json, as runc).
pub fn error(g: &GlobalOpts, msg: &str) {
    eprintln!("runsc: {msg}");
    let Some(p) = &g.log else { return };
    let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(p)
    else {
        return;
    };
    let time = crate::oci::state::now_rfc3339();
    let line = if g.log_format == "json" {
        serde_json::json!({ "level": "error", "msg": msg, "time": time }).to_string()
    } else {
        format!("{time} ERROR {msg}")
    };
    let _ = writeln!(f, "{line}");
}
