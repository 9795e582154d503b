//! The guest's registers the backend keeps in software: the sixteen general-purpose
//! registers (fifteen travel through the world switch; `rsp` is the VMCS's, copied here
//! after every exit) and `rip`. The VMCS is current only on the bound CPU inside `run`, so
//! `set_gpr`/`set_pc` before `bind` or between runs change this copy, and the next entry
//! writes what changed.

/// The GPR numbers of `set_gpr`/`get_gpr`.
pub use axvcpu_x86::gpr;

/// The guest's general-purpose registers, indexed by [`gpr`] number. The layout is the
/// world switch's (`switch.rs` addresses slot `i` at `8 * i`; slot [`gpr::RSP`] is not
/// moved there: the VMCS holds `rsp`).
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Gprs(pub [u64; gpr::COUNT]);

impl Gprs {
    /// The hypercall arguments of the contract: `rdi, rsi, rdx, rcx, r8, r9`.
    pub(crate) fn hypercall_args(&self) -> [u64; 6] {
        gpr::hypercall_args(&self.0)
    }
}

/// The software copy of the guest registers, with what the next entry must write back.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Regs {
    pub(crate) gprs: Gprs,
    pub(crate) rip: u64,
    /// `rip` changed since the last exit: write it (and drop the interrupt shadow, which
    /// belonged to the old instruction).
    pub(crate) rip_dirty: bool,
    /// `rsp` changed since the last exit: write it.
    pub(crate) rsp_dirty: bool,
}

impl Regs {
    /// Register `r` (a [`gpr`] number; 0 beyond them).
    pub(crate) fn get(&self, r: usize) -> u64 {
        self.gprs.0.get(r).copied().unwrap_or(0)
    }

    /// Sets register `r` (a [`gpr`] number; ignored beyond them).
    pub(crate) fn set(&mut self, r: usize, v: u64) {
        if let Some(slot) = self.gprs.0.get_mut(r) {
            *slot = v;
            self.rsp_dirty |= r == gpr::RSP;
        }
    }

    /// Moves `rip`.
    pub(crate) fn set_rip(&mut self, rip: u64) {
        self.rip = rip;
        self.rip_dirty = true;
    }

    /// Moves `rip` past an instruction of `len` bytes.
    pub(crate) fn advance_rip(&mut self, len: u64) {
        self.set_rip(self.rip.wrapping_add(len));
    }
}

impl axvcpu_x86::exit::GuestRegs for Regs {
    fn gpr(&self, r: usize) -> u64 {
        self.get(r)
    }

    fn set_gpr(&mut self, r: usize, value: u64) {
        self.set(r, value);
    }

    fn advance_rip(&mut self, len: u64) {
        Regs::advance_rip(self, len);
    }
}
