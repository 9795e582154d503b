//! The guest register file: the x86-64 GPRs, `rip` and `rflags` as KVM's `kvm_regs` holds
//! them (they travel through the shared `kvm_run` page, see `switch`), numbered as
//! instructions encode them.

use axvcpu::{VCpuError, VCpuResult};
use kvm_bindings::kvm_regs;

/// The GPR numbers of `set_gpr`/`get_gpr`, as instructions encode them.
pub use axvcpu_x86::gpr;

/// RFLAGS.IF: maskable interrupts enabled.
pub(crate) const RFLAGS_IF: u64 = 1 << 9;

/// The guest's GPRs, `rip` and `rflags` as of the last exit, plus changes the hypervisor
/// made since, which the next `KVM_RUN` loads.
#[derive(Debug, Default)]
pub(crate) struct RegFile {
    regs: kvm_regs,
    dirty: bool,
}

impl RegFile {
    /// The state a vCPU starts in: `rip` = `entry`, `rsp` = `stack_top`, interrupts off.
    pub(crate) fn reset(&mut self, entry: u64, stack_top: u64) {
        self.regs = kvm_regs {
            rip: entry,
            rsp: stack_top,
            rflags: 2,
            ..Default::default()
        };
        self.dirty = true;
    }

    #[inline]
    pub(crate) fn get(&self, reg: usize) -> VCpuResult<u64> {
        get(&self.regs, reg)
    }

    #[inline]
    pub(crate) fn set(&mut self, reg: usize, val: u64) -> VCpuResult {
        set(&mut self.regs, reg, val)?;
        self.dirty = true;
        Ok(())
    }

    #[inline]
    pub(crate) fn rip(&self) -> u64 {
        self.regs.rip
    }

    #[inline]
    pub(crate) fn set_rip(&mut self, rip: u64) {
        self.regs.rip = rip;
        self.dirty = true;
    }

    #[inline]
    pub(crate) fn rflags(&self) -> u64 {
        self.regs.rflags
    }

    /// Sets `rax`, the hypercall result. Loading registers costs KVM about as much as an
    /// exit here, so an unchanged value is not written back.
    #[inline]
    pub(crate) fn set_rax(&mut self, val: u64) {
        if self.regs.rax != val {
            self.regs.rax = val;
            self.dirty = true;
        }
    }

    /// The hypercall number and arguments: rax; rdi, rsi, rdx, rcx, r8, r9.
    #[inline]
    pub(crate) fn hypercall(&self) -> (u64, [u64; 6]) {
        let r = &self.regs;
        (r.rax, [r.rdi, r.rsi, r.rdx, r.rcx, r.r8, r.r9])
    }

    /// The registers to load at the next entry, if the hypervisor changed any.
    #[inline]
    pub(crate) fn take_changes(&mut self) -> Option<kvm_regs> {
        core::mem::take(&mut self.dirty).then_some(self.regs)
    }

    /// Takes what KVM reported at an exit.
    #[inline]
    pub(crate) fn refresh(&mut self, regs: kvm_regs) {
        self.regs = regs;
    }
}

fn out_of_range(reg: usize) -> VCpuError {
    VCpuError::invalid_input("x86-64 general-purpose registers are numbered 0..16")
        .with_value(reg as u64)
}

/// Register `reg` of `regs`.
fn get(regs: &kvm_regs, reg: usize) -> VCpuResult<u64> {
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
fn set(regs: &mut kvm_regs, reg: usize, val: u64) -> VCpuResult {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_register_round_trips_and_16_is_refused() {
        let mut r = kvm_regs::default();
        for i in 0..gpr::COUNT {
            set(&mut r, i, 100 + i as u64).expect("in range");
        }
        for i in 0..gpr::COUNT {
            assert_eq!(get(&r, i), Ok(100 + i as u64));
        }
        assert_eq!(r.rdi, 107);
        assert_eq!(r.r15, 115);
        assert!(set(&mut r, 16, 0).is_err());
        assert!(get(&r, usize::MAX).is_err());
    }

    #[test]
    fn only_changes_are_handed_to_kvm() {
        let mut f = RegFile::default();
        f.reset(0x1000, 0x2000);
        assert_eq!(
            f.take_changes().map(|r| (r.rip, r.rsp, r.rflags)),
            Some((0x1000, 0x2000, 2))
        );
        assert!(f.take_changes().is_none());
        f.set_rax(0);
        assert!(f.take_changes().is_none(), "rax was already 0");
        f.set_rax(7);
        assert_eq!(f.take_changes().map(|r| r.rax), Some(7));
    }
}
