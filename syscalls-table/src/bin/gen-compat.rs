//! Prints docs/COMPATIBILITY.md to stdout.
//!
//! Usage: `cargo run -p syscalls-table --bin gen-compat > docs/COMPATIBILITY.md`

fn main() {
    print!("{}", syscalls_table::compatibility_markdown());
}
