//! What the benchmark drivers share: finding the `runsc` binary to compare
//! against native runs.

use std::path::{Path, PathBuf};

/// `runsc` from an explicit path, $RUNSC_BIN, the workspace's release
/// build, or next to the running executable.
pub fn find_runsc(explicit: Option<&Path>) -> Result<PathBuf, String> {
    if let Some(p) = explicit {
        return Ok(p.to_path_buf());
    }
    if let Some(p) = std::env::var_os("RUNSC_BIN") {
        return Ok(p.into());
    }
    let ws = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/release/runsc");
    if ws.is_file() {
        return Ok(ws);
    }
    if let Some(dir) = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(PathBuf::from))
    {
        let p = dir.join("runsc");
        if p.is_file() {
            return Ok(p);
        }
    }
    Err(format!(
        "cannot find runsc (tried --runsc, $RUNSC_BIN, {} and next to this executable); \
         build it with `cargo build --release -p runsc-cli`",
        ws.display()
    ))
}
