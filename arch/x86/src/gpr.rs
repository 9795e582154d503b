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

/// The registers of a hypercall's arguments, in order (`Hypercall::args`): `rdi, rsi, rdx,
/// rcx, r8, r9`, the System V argument registers with `rcx` for the fourth, as KVM's and
/// Xen's hypercall conventions have it.
pub const HYPERCALL_ARGS: [usize; 6] = [RDI, RSI, RDX, RCX, R8, R9];

/// The hypercall arguments in `gprs` (indexed by these numbers).
pub fn hypercall_args(gprs: &[u64; COUNT]) -> [u64; 6] {
    HYPERCALL_ARGS.map(|r| gprs[r])
}
