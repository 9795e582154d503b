//! The guest's general-purpose registers. Fourteen travel through [`Gprs`] in the world
//! switch; `rax` and `rsp` live in the VMCB, where `vmrun` loads and saves them.

use crate::vmcb::{save, Vmcb};

/// The GPR numbers of `set_gpr`/`get_gpr` (`rax` and `rsp` live in the VMCB).
pub use axvcpu_x86::gpr;

/// The guest's general-purpose registers the world switch moves, indexed by [`gpr`]
/// number. Slots [`gpr::RAX`] and [`gpr::RSP`] are unused: those two live in the VMCB.
/// The layout is the world switch's (`switch.rs` addresses slot `i` at `8 * i`).
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Gprs(pub [u64; gpr::COUNT]);

impl Gprs {
    /// Register `r` (a [`gpr`] number; 0 beyond them), `rax` and `rsp` from `vmcb`.
    pub(crate) fn get(&self, vmcb: Vmcb, r: usize) -> u64 {
        match r {
            gpr::RAX => vmcb.r64(save::RAX),
            gpr::RSP => vmcb.r64(save::RSP),
            _ => self.0.get(r).copied().unwrap_or(0),
        }
    }

    /// Sets register `r` (a [`gpr`] number; ignored beyond them), `rax` and `rsp` in
    /// `vmcb`.
    pub(crate) fn set(&mut self, vmcb: Vmcb, r: usize, v: u64) {
        match r {
            gpr::RAX => vmcb.w64(save::RAX, v),
            gpr::RSP => vmcb.w64(save::RSP, v),
            _ => {
                if let Some(slot) = self.0.get_mut(r) {
                    *slot = v;
                }
            }
        }
    }

    /// The hypercall arguments of the contract: `rdi, rsi, rdx, rcx, r8, r9`.
    pub(crate) fn hypercall_args(&self) -> [u64; 6] {
        gpr::hypercall_args(&self.0)
    }
}

/// The guest's registers as the shared x86 exit code sees them: `gprs`, with `rax`, `rsp`
/// and `rip` in `vmcb`.
pub(crate) struct GuestView<'a> {
    pub(crate) gprs: &'a mut Gprs,
    pub(crate) vmcb: Vmcb,
}

impl axvcpu_x86::exit::GuestRegs for GuestView<'_> {
    fn gpr(&self, r: usize) -> u64 {
        self.gprs.get(self.vmcb, r)
    }

    fn set_gpr(&mut self, r: usize, value: u64) {
        self.gprs.set(self.vmcb, r, value);
    }

    fn advance_rip(&mut self, len: u64) {
        self.vmcb.advance_rip(len);
    }
}
