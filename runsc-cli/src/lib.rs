//! The `runsc` command logic as a library, so the binary stays argument
//! parsing and a containerd shim can reuse the same lifecycle code:
//! `oci` (the OCI runtime commands: spec, state directory, sandbox control)
//! and `gofer` (starting the file server process for a root).

pub mod gofer_process;
pub mod logging;
pub mod oci;
pub mod userns;
