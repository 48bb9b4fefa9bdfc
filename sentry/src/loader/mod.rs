//! Loading programs: ELF images (static, static-PIE, dynamic with PT_INTERP)
//! and the initial stack with argv, envp and the auxiliary vector.

pub mod elf;
pub mod stack;
