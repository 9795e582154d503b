//! The guest register file: [`Regs`], what the world switch moves on every entry and exit
//! (laid out for its assembly), and [`El1Regs`], the EL1 system registers a guest owns from
//! `bind` to `unbind`.
//!
//! General-purpose registers are numbered as instructions encode them: `0..=30` are
//! `x0..x30`. Number 31 is the zero register as an instruction's operand (it reads 0, a
//! write to it vanishes: [`Regs::operand`], [`Regs::set_result`]), and out of range for
//! `set_gpr`/`get_gpr`.
#![cfg_attr(not(target_arch = "aarch64"), allow(dead_code))]

use axvcpu::{VCpuError, VCpuResult};

/// `SPSR_EL2` of a guest CPU at reset: EL1h, D, A, I, F masked.
pub(crate) const SPSR_EL1H_MASKED: u64 = 0x3c5;

/// Everything the world switch reads or writes; its offsets are passed to the assembly.
#[repr(C, align(16))]
#[derive(Debug, Clone, Default)]
pub(crate) struct Regs {
    /// Guest `x0..x30`.
    pub x: [u64; 31],
    /// Guest program counter (`ELR_EL2`).
    pub elr: u64,
    /// Guest `PSTATE` (`SPSR_EL2`).
    pub spsr: u64,
    /// Host `x19..x30`.
    pub host_x: [u64; 12],
    /// Host `d8..d15`.
    pub host_d: [u64; 8],
    pub host_sp: u64,
    pub host_tpidr: u64,
    pub host_vbar: u64,
    pub host_fpcr: u64,
    pub host_fpsr: u64,
    /// Guest `q0..q31`.
    pub fp_q: [u128; 32],
    pub fpcr: u64,
    pub fpsr: u64,
    /// Non-zero once the guest has used FP/SIMD: its registers are then moved on every
    /// entry and exit; until then the guest runs with `CPTR_EL2.TFP` set and its first
    /// FP/SIMD instruction traps (EC 0x07), which sets this.
    pub fp_eager: u64,
    /// Which vector the exit came through ([`kind`](crate::switch::kind)).
    pub exit_kind: u64,
    /// `ESR_EL2`, `FAR_EL2`, `HPFAR_EL2` of the exit, saved before any Rust code runs.
    pub esr: u64,
    pub far: u64,
    pub hpfar: u64,
}

const NO_SUCH_GPR: &str = "AArch64 has registers x0..x30";

impl Regs {
    /// Register `r` as an instruction's source operand (31: the zero register).
    pub fn operand(&self, r: usize) -> u64 {
        self.x.get(r).copied().unwrap_or(0)
    }

    /// Writes `v` to register `r` as an instruction's destination (31: discarded).
    pub fn set_result(&mut self, r: usize, v: u64) {
        if let Some(x) = self.x.get_mut(r) {
            *x = v;
        }
    }

    /// Moves the guest past the `len` bytes of the instruction it trapped on.
    pub fn advance(&mut self, len: u64) {
        self.elr = self.elr.wrapping_add(len);
    }

    /// `x<reg>` for `get_gpr`.
    pub fn gpr(&self, reg: usize) -> VCpuResult<u64> {
        self.x
            .get(reg)
            .copied()
            .ok_or_else(|| VCpuError::invalid_input(NO_SUCH_GPR).with_value(reg as u64))
    }

    /// `x<reg>` for `set_gpr`.
    pub fn set_gpr(&mut self, reg: usize, val: u64) -> VCpuResult {
        let x = self
            .x
            .get_mut(reg)
            .ok_or_else(|| VCpuError::invalid_input(NO_SUCH_GPR).with_value(reg as u64))?;
        *x = val;
        Ok(())
    }
}

/// Declares [`El1Regs`] with one field per register and its load/save.
macro_rules! el1_regs {
    ($($field:ident => $name:literal),* $(,)?) => {
        /// The guest's EL1 (and EL0) system registers. The host at EL2 never uses them, so
        /// they live in the CPU from `bind` to `unbind`.
        #[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
        pub(crate) struct El1Regs {
            $(pub $field: u64,)*
        }

        impl El1Regs {
            /// Writes every register into the CPU.
            #[cfg(target_arch = "aarch64")]
            pub fn load(&self) {
                $(
                    // SAFETY: an EL1 register written from EL2; the host does not use it.
                    unsafe {
                        core::arch::asm!(concat!("msr ", $name, ", {}"), in(reg) self.$field,
                            options(nostack, preserves_flags));
                    }
                )*
            }

            /// Reads every register from the CPU.
            #[cfg(target_arch = "aarch64")]
            pub fn save(&mut self) {
                $(
                    // SAFETY: reads an EL1 register from EL2.
                    unsafe {
                        core::arch::asm!(concat!("mrs {}, ", $name), out(reg) self.$field,
                            options(nostack, preserves_flags, nomem));
                    }
                )*
            }
        }
    };
}

el1_regs! {
    sctlr => "sctlr_el1",
    cpacr => "cpacr_el1",
    ttbr0 => "ttbr0_el1",
    ttbr1 => "ttbr1_el1",
    tcr => "tcr_el1",
    esr => "esr_el1",
    far => "far_el1",
    afsr0 => "afsr0_el1",
    afsr1 => "afsr1_el1",
    mair => "mair_el1",
    amair => "amair_el1",
    vbar => "vbar_el1",
    contextidr => "contextidr_el1",
    tpidr_el1 => "tpidr_el1",
    tpidr_el0 => "tpidr_el0",
    tpidrro_el0 => "tpidrro_el0",
    sp_el0 => "sp_el0",
    sp_el1 => "sp_el1",
    elr_el1 => "elr_el1",
    spsr_el1 => "spsr_el1",
    par => "par_el1",
    cntkctl => "cntkctl_el1",
    csselr => "csselr_el1",
    cntv_ctl => "cntv_ctl_el0",
    cntv_cval => "cntv_cval_el0",
}

/// `SCTLR_EL1` at reset for a guest: MMU and caches off, the RES1 bits set.
const SCTLR_EL1_RESET: u64 = 0x30d0_0800;
/// `CPACR_EL1.FPEN` = 0b11: the guest's FP/SIMD use does not trap at EL1 (the world switch
/// keeps its registers).
const CPACR_EL1_FPEN: u64 = 0b11 << 20;

impl El1Regs {
    /// The registers of a guest CPU at reset.
    pub fn reset() -> Self {
        Self {
            sctlr: SCTLR_EL1_RESET,
            cpacr: CPACR_EL1_FPEN,
            ..Self::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn register_31_is_the_zero_register_as_an_operand_and_out_of_range_as_a_gpr() {
        let mut r = Regs::default();
        r.set_result(30, 7);
        r.set_result(31, 9);
        assert_eq!((r.operand(30), r.operand(31)), (7, 0));
        assert_eq!(r.gpr(30).unwrap(), 7);
        assert!(r.gpr(31).is_err());
        assert!(r.set_gpr(31, 1).is_err());
        r.set_gpr(0, 5).unwrap();
        assert_eq!(r.operand(0), 5);
    }

    #[test]
    fn advance_wraps_like_the_program_counter() {
        let mut r = Regs {
            elr: u64::MAX - 1,
            ..Regs::default()
        };
        r.advance(4);
        assert_eq!(r.elr, 2);
    }
}
