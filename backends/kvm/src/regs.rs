//! The x86-64 register file as KVM's `kvm_regs` holds it, numbered as instructions encode it.

use axvcpu::{VCpuError, VCpuResult};
use kvm_bindings::kvm_regs;

/// The number of general-purpose registers: `0..16` = rax, rcx, rdx, rbx, rsp, rbp, rsi,
/// rdi, r8..r15.
pub const GPR_COUNT: usize = 16;

/// Register numbers in instruction encoding.
pub mod gpr {
    /// rax
    pub const RAX: usize = 0;
    /// rcx
    pub const RCX: usize = 1;
    /// rdx
    pub const RDX: usize = 2;
    /// rbx
    pub const RBX: usize = 3;
    /// rsp
    pub const RSP: usize = 4;
    /// rbp
    pub const RBP: usize = 5;
    /// rsi
    pub const RSI: usize = 6;
    /// rdi
    pub const RDI: usize = 7;
    /// r8
    pub const R8: usize = 8;
    /// r9
    pub const R9: usize = 9;
}

/// RFLAGS.IF: maskable interrupts enabled.
pub(crate) const RFLAGS_IF: u64 = 1 << 9;

fn out_of_range(reg: usize) -> VCpuError {
    VCpuError::invalid_input("x86-64 general-purpose registers are numbered 0..16")
        .with_value(reg as u64)
}

/// Register `reg` of `regs`.
pub(crate) fn get(regs: &kvm_regs, reg: usize) -> VCpuResult<u64> {
    Ok(match reg {
        0 => regs.rax,
        1 => regs.rcx,
        2 => regs.rdx,
        3 => regs.rbx,
        4 => regs.rsp,
        5 => regs.rbp,
        6 => regs.rsi,
        7 => regs.rdi,
        8 => regs.r8,
        9 => regs.r9,
        10 => regs.r10,
        11 => regs.r11,
        12 => regs.r12,
        13 => regs.r13,
        14 => regs.r14,
        15 => regs.r15,
        _ => return Err(out_of_range(reg)),
    })
}

/// Sets register `reg` of `regs`.
pub(crate) fn set(regs: &mut kvm_regs, reg: usize, val: u64) -> VCpuResult {
    let slot = match reg {
        0 => &mut regs.rax,
        1 => &mut regs.rcx,
        2 => &mut regs.rdx,
        3 => &mut regs.rbx,
        4 => &mut regs.rsp,
        5 => &mut regs.rbp,
        6 => &mut regs.rsi,
        7 => &mut regs.rdi,
        8 => &mut regs.r8,
        9 => &mut regs.r9,
        10 => &mut regs.r10,
        11 => &mut regs.r11,
        12 => &mut regs.r12,
        13 => &mut regs.r13,
        14 => &mut regs.r14,
        15 => &mut regs.r15,
        _ => return Err(out_of_range(reg)),
    };
    *slot = val;
    Ok(())
}

/// The hypercall number and arguments: rax; rdi, rsi, rdx, rcx, r8, r9.
pub(crate) fn hypercall(regs: &kvm_regs) -> (u64, [u64; 6]) {
    (
        regs.rax,
        [regs.rdi, regs.rsi, regs.rdx, regs.rcx, regs.r8, regs.r9],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_register_round_trips_and_16_is_refused() {
        let mut r = kvm_regs::default();
        for i in 0..GPR_COUNT {
            set(&mut r, i, 100 + i as u64).expect("in range");
        }
        for i in 0..GPR_COUNT {
            assert_eq!(get(&r, i), Ok(100 + i as u64));
        }
        assert_eq!(r.rdi, 107);
        assert_eq!(r.r15, 115);
        assert!(set(&mut r, 16, 0).is_err());
        assert!(get(&r, usize::MAX).is_err());
    }
}
