//! Generator for `docs/COMPATIBILITY.md`.

use std::fmt::Write as _;

use crate::status::{status, Status};
use crate::SYSCALLS;

/// Renders the syscall compatibility document (`docs/COMPATIBILITY.md`).
///
/// The output is deterministic so that a test can compare it byte for byte
/// with the checked-in file and flag it as stale.
pub fn compatibility_markdown() -> String {
    let statuses: Vec<Status> = SYSCALLS.iter().map(|s| status(s.name)).collect();
    let count = |f: fn(&Status) -> bool| statuses.iter().filter(|s| f(s)).count();
    let supported = count(|s| matches!(s, Status::Supported));
    let partial = count(|s| matches!(s, Status::Partial(_)));
    let unsupported = count(|s| matches!(s, Status::Unsupported(_)));

    // Writing to a String cannot fail, hence the ignored results.
    let mut out = String::new();
    out.push_str("# Syscall compatibility (x86-64)\n\n");
    out.push_str(
        "This file is generated from the `syscalls-table` crate; do not edit it by hand. \
         Support levels come from `syscalls-table/src/status.rs`. Regenerate it with \
         `cargo run -p syscalls-table --bin gen-compat > docs/COMPATIBILITY.md`.\n\n",
    );
    let _ = writeln!(out, "Total syscalls: {}\n", SYSCALLS.len());
    let _ = writeln!(out, "- Supported: {supported}");
    let _ = writeln!(out, "- Partial: {partial}");
    let _ = writeln!(
        out,
        "- Unsupported (ENOSYS or other error): {unsupported}\n"
    );

    out.push_str("| Nr | Name | Arguments | Status | Note |\n");
    out.push_str("| ---: | --- | --- | --- | --- |\n");
    for (info, status) in SYSCALLS.iter().zip(&statuses) {
        let args: Vec<&str> = info.args.iter().map(|a| a.name).collect();
        let _ = writeln!(
            out,
            "| {} | `{}` | {} | {} | {} |",
            info.nr,
            info.name,
            table_cell(&args.join(", ")),
            status.label(),
            table_cell(status.note()),
        );
    }
    out
}

/// Escapes text so it stays inside one markdown table cell.
fn table_cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_row_per_syscall_in_number_order() {
        let doc = compatibility_markdown();
        let rows: Vec<&str> = doc
            .lines()
            .filter_map(|l| l.strip_prefix("| "))
            .filter(|l| l.starts_with(|c: char| c.is_ascii_digit()))
            .collect();
        assert_eq!(rows.len(), SYSCALLS.len());
        assert!(rows[0].starts_with("0 | `read` | fd, buf, count | "));
        assert!(rows.last().unwrap().starts_with("462 | `mseal` | "));
        assert!(doc.contains("do not edit it by hand"));
    }

    #[test]
    fn cells_are_escaped() {
        assert_eq!(table_cell("a|b\nc"), "a\\|b c");
    }
}
