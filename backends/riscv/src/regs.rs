//! The state of one vCPU the hardware holds while it runs: the register file the world
//! switch reads and writes ([`Regs`]), and the VS-level CSRs swapped at bind and unbind
//! ([`VsCsrs`]).

use crate::hw::{self, num};

/// Everything the world-switch assembly reads or writes. `#[repr(C)]`: the asm addresses
/// fields by the offsets `switch.rs` passes it.
#[repr(C)]
#[derive(Debug, Default, Clone)]
pub(crate) struct Regs {
    /// Guest `x0..x31` (`x0` stays 0).
    pub guest_gpr: [u64; 32],
    /// The HS-level `sstatus` the guest runs with: `SPP` is its privilege (VS or VU), `SIE`
    /// stays 0 so no host interrupt is taken between the last kick check and `sret`.
    pub guest_sstatus: u64,
    /// The guest's `hstatus` (`SPV` = 1, `SPVP`, `VTW`, `VTVM`, ...).
    pub guest_hstatus: u64,
    /// The guest's program counter.
    pub guest_sepc: u64,
    /// Host registers: only `ra, sp, gp, tp, s0..s11` are used (indexed by number).
    pub host_gpr: [u64; 32],
    /// The host CSRs the switch replaces while the guest runs.
    pub host_sstatus: u64,
    pub host_hstatus: u64,
    pub host_stvec: u64,
    pub host_sscratch: u64,
    /// Trap CSRs, saved by the exit path before any Rust code runs.
    pub trap_scause: u64,
    pub trap_stval: u64,
    pub trap_htval: u64,
    pub trap_htinst: u64,
}

impl Regs {
    /// General-purpose register `r` (`x0` reads 0; `r` is taken modulo 32, so decoded
    /// register fields never index out of bounds).
    pub fn gpr(&self, r: usize) -> u64 {
        match self.guest_gpr.get(r & 31) {
            Some(&v) if r & 31 != 0 => v,
            _ => 0,
        }
    }

    /// Sets general-purpose register `r` (writes to `x0` are dropped, as the hardware does).
    pub fn set_gpr(&mut self, r: usize, v: u64) {
        if r & 31 != 0 {
            if let Some(slot) = self.guest_gpr.get_mut(r & 31) {
                *slot = v;
            }
        }
    }
}

/// A hart's floating-point registers (`f0..f31`, then `fcsr`), as `switch.rs`'s FP copy
/// routines lay them out.
#[repr(C)]
#[derive(Debug, Default, Clone)]
pub(crate) struct FpRegs {
    pub f: [u64; 32],
    pub fcsr: u64,
}

const _: () = assert!(core::mem::size_of::<FpRegs>() == 33 * 8);

/// The CSRs a VS-mode guest owns. The host never uses them, so they stay live in the hart
/// from `bind` to `unbind` instead of being switched on every entry.
///
/// `scounteren` and `senvcfg` have no VS copies: VS-mode reads and writes the hart's own,
/// which also govern the host's U-mode. They are swapped with the host's values at
/// bind/unbind so a guest cannot change what the host's user programs may do.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct VsCsrs {
    pub vsstatus: u64,
    pub vsie: u64,
    pub vstvec: u64,
    pub vsscratch: u64,
    pub vsepc: u64,
    pub vscause: u64,
    pub vstval: u64,
    pub vsatp: u64,
    /// The guest's timer deadline: `vstimecmp` with Sstc, else the deadline the backend
    /// programs into the host timer while the vCPU is bound (`u64::MAX`: none).
    pub vstimecmp: u64,
    pub scounteren: u64,
    pub senvcfg: u64,
}

/// The host's values of the shared CSRs while a guest owns them.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct HostShared {
    scounteren: u64,
    senvcfg: u64,
}

impl VsCsrs {
    /// Makes this vCPU's VS CSRs live; returns the host's values of the shared ones.
    ///
    /// # Safety
    /// `hgatp` holds this vCPU's G-stage table (see [`hw::write_vsatp`]) from now until the
    /// matching [`save`](Self::save).
    pub unsafe fn load(&self) -> HostShared {
        hw::write::<{ num::VSSTATUS }>(self.vsstatus);
        hw::write::<{ num::VSIE }>(self.vsie);
        hw::write::<{ num::VSTVEC }>(self.vstvec);
        hw::write::<{ num::VSSCRATCH }>(self.vsscratch);
        hw::write::<{ num::VSEPC }>(self.vsepc);
        hw::write::<{ num::VSCAUSE }>(self.vscause);
        hw::write::<{ num::VSTVAL }>(self.vstval);
        // SAFETY: the caller keeps this vCPU's G-stage table in hgatp while this vsatp is
        // live.
        unsafe { hw::write_vsatp(self.vsatp) };
        if hw::has_sstc() {
            hw::write::<{ num::VSTIMECMP }>(self.vstimecmp);
        }
        HostShared {
            scounteren: hw::swap::<{ num::SCOUNTEREN }>(self.scounteren),
            senvcfg: hw::swap::<{ num::SENVCFG }>(self.senvcfg),
        }
    }

    /// Saves the live VS CSRs and gives the shared ones back to the host.
    pub fn save(&mut self, host: HostShared) {
        self.vsstatus = hw::read::<{ num::VSSTATUS }>();
        self.vsie = hw::read::<{ num::VSIE }>();
        self.vstvec = hw::read::<{ num::VSTVEC }>();
        self.vsscratch = hw::read::<{ num::VSSCRATCH }>();
        self.vsepc = hw::read::<{ num::VSEPC }>();
        self.vscause = hw::read::<{ num::VSCAUSE }>();
        self.vstval = hw::read::<{ num::VSTVAL }>();
        self.vsatp = hw::read::<{ num::VSATP }>();
        if hw::has_sstc() {
            self.vstimecmp = hw::read::<{ num::VSTIMECMP }>();
            // A deadline left armed would raise VSTIP for whichever vCPU binds next.
            hw::write::<{ num::VSTIMECMP }>(u64::MAX);
        }
        self.scounteren = hw::swap::<{ num::SCOUNTEREN }>(host.scounteren);
        self.senvcfg = hw::swap::<{ num::SENVCFG }>(host.senvcfg);
    }
}
