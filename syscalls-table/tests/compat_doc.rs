//! Fails when the checked-in compatibility document no longer matches what
//! the syscall table and status list generate, so the two cannot drift.

use std::path::Path;

const REGENERATE: &str = "cargo run -p syscalls-table --bin gen-compat > docs/COMPATIBILITY.md";

#[test]
fn compatibility_doc_is_up_to_date() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/COMPATIBILITY.md");
    let on_disk = std::fs::read_to_string(&path).unwrap_or_else(|err| {
        panic!(
            "cannot read {}: {err}; generate it with `{REGENERATE}`",
            path.display()
        )
    });
    let generated = syscalls_table::compatibility_markdown();
    if on_disk != generated {
        let first_diff = on_disk
            .lines()
            .zip(generated.lines())
            .position(|(a, b)| a != b)
            .unwrap_or_else(|| on_disk.lines().count().min(generated.lines().count()));
        panic!(
            "docs/COMPATIBILITY.md is stale: run `{REGENERATE}` from the workspace root \
             (first difference at line {})",
            first_diff + 1
        );
    }
}
