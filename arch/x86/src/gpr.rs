//! The general-purpose register numbers of `set_gpr`/`get_gpr` on every x86 backend: as x86
//! encodes registers in instructions (ModRM, REX), so a decoded operand is a register
//! number as it stands.

/// `rax`.
pub const RAX: usize = 0;
/// `rcx`.
pub const RCX: usize = 1;
/// `rdx`.
pub const RDX: usize = 2;
/// `rbx`.
pub const RBX: usize = 3;
/// `rsp`.
pub const RSP: usize = 4;
/// `rbp`.
pub const RBP: usize = 5;
/// `rsi`.
pub const RSI: usize = 6;
/// `rdi`.
pub const RDI: usize = 7;
/// `r8`; `r9`..`r15` are 9..15.
pub const R8: usize = 8;
/// `r9`.
pub const R9: usize = 9;
/// How many there are: `0..16`.
pub const COUNT: usize = 16;
