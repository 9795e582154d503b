//! Decoding of `ESR_EL2` (exception class and instruction-specific syndrome) and the
//! stage-2 fault registers, as plain functions tested on any host.
//!
//! References: Arm ARM (DDI 0487), D24.2.46 `ESR_EL2`: the ISS encodings for an exception
//! from a Data Abort (EC 0x24), an Instruction Abort (EC 0x20), an `HVC` (EC 0x16), a
//! trapped `SMC` (EC 0x17), a trapped `MSR`/`MRS`/system instruction (EC 0x18) and a
//! trapped `WFI`/`WFE` (EC 0x01); D24.2.61 `HPFAR_EL2`. `decode-check/` (workspace root)
//! compares the field decoding with the independent `aarch64-esr-decoder` crate, and the
//! data-abort handling with what `yaxpeax-arm` says the faulting instruction does, in
//! `cargo xtask test` and in the coverage-guided `cargo xtask fuzz aarch64`.

use axvcpu::{AccessWidth, SysRegAddr};
use axvcpu_npt::MapFlags;

/// Exception classes (`ESR_EL2.EC`, bits 31:26) the backend handles.
pub mod ec {
    /// Unknown reason.
    pub const UNKNOWN: u64 = 0x00;
    /// Trapped `WFI`/`WFE`/`WFIT`/`WFET`.
    pub const WFX: u64 = 0x01;
    /// Access to SVE/Advanced SIMD/floating point trapped by `CPTR_EL2`.
    pub const FP: u64 = 0x07;
    /// `HVC` executed in AArch64 state.
    pub const HVC64: u64 = 0x16;
    /// `SMC` executed in AArch64 state (trapped by `HCR_EL2.TSC`).
    pub const SMC64: u64 = 0x17;
    /// Trapped `MSR`, `MRS` or system instruction in AArch64 state.
    pub const SYSREG: u64 = 0x18;
    /// Instruction Abort from a lower Exception level.
    pub const IABT_LOWER: u64 = 0x20;
    /// Data Abort from a lower Exception level.
    pub const DABT_LOWER: u64 = 0x24;
}

/// The fields of an `ESR_EL2` value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Esr(pub u64);

impl Esr {
    /// Exception class (bits 31:26).
    pub const fn ec(self) -> u64 {
        (self.0 >> 26) & 0x3f
    }
    /// Instruction length (bit 25): `true` for a 32-bit instruction.
    pub const fn il(self) -> bool {
        self.0 & (1 << 25) != 0
    }
    /// Instruction-specific syndrome (bits 24:0).
    pub const fn iss(self) -> u64 {
        self.0 & 0x1ff_ffff
    }
    /// Length in bytes of the trapped instruction (4, or 2 for a 16-bit T32 instruction).
    pub const fn insn_len(self) -> u64 {
        if self.il() {
            4
        } else {
            2
        }
    }
}

/// Fault status codes (`DFSC`/`IFSC`, ISS bits 5:0) grouped by kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultKind {
    /// Address size fault, levels 0-3 (0b0000LL), or level -1 (0b101001, FEAT_LPA2).
    AddressSize,
    /// Translation fault, levels 0-3 (0b0001LL) or level -1 (0b101011, FEAT_LPA2):
    /// nothing mapped.
    Translation,
    /// Access flag fault, levels 0-3 (0b0010LL).
    AccessFlag,
    /// Permission fault, levels 0-3 (0b0011LL): mapped without the needed permission.
    Permission,
    /// Anything else (external abort, alignment, TLB conflict, ...), with the raw code.
    Other(u64),
}

impl FaultKind {
    /// Classifies a fault status code.
    pub const fn from_fsc(fsc: u64) -> Self {
        match fsc & 0x3f {
            0x00..=0x03 | 0x29 => Self::AddressSize,
            0x04..=0x07 | 0x2b => Self::Translation,
            0x08..=0x0b => Self::AccessFlag,
            0x0c..=0x0f => Self::Permission,
            other => Self::Other(other),
        }
    }
}

/// The ISS of a Data Abort (EC 0x24).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataAbort {
    /// ISV (bit 24): the syndrome bits 23:14 describe the access.
    pub isv: bool,
    /// The access width (SAS, bits 23:22), valid when `isv`.
    pub width: AccessWidth,
    /// SSE (bit 21): the load sign-extends.
    pub sign_extend: bool,
    /// SRT (bits 20:16): the transfer register (31 = `xzr`/`wzr`).
    pub reg: usize,
    /// SF (bit 15): the register is 64-bit (`x`), not 32-bit (`w`).
    pub sf: bool,
    /// S1PTW (bit 7): the fault happened during the guest's own stage-1 table walk.
    pub s1ptw: bool,
    /// WnR (bit 6): a write (or, on a walk, a hardware table update).
    pub write: bool,
    /// CM (bit 8): a cache maintenance instruction.
    pub cache_maintenance: bool,
    /// FnV (bit 10): `FAR_EL2` is not valid.
    pub far_not_valid: bool,
    /// The fault status code (DFSC, bits 5:0), classified.
    pub kind: FaultKind,
}

impl DataAbort {
    /// Decodes the ISS of a Data Abort.
    pub const fn decode(iss: u64) -> Self {
        let width = match (iss >> 22) & 3 {
            0 => AccessWidth::Byte,
            1 => AccessWidth::Word,
            2 => AccessWidth::Dword,
            _ => AccessWidth::Qword,
        };
        Self {
            isv: iss & (1 << 24) != 0,
            width,
            sign_extend: iss & (1 << 21) != 0,
            reg: ((iss >> 16) & 0x1f) as usize,
            sf: iss & (1 << 15) != 0,
            s1ptw: iss & (1 << 7) != 0,
            write: iss & (1 << 6) != 0,
            cache_maintenance: iss & (1 << 8) != 0,
            far_not_valid: iss & (1 << 10) != 0,
            kind: FaultKind::from_fsc(iss),
        }
    }

    /// The width of the destination register write: 64 bits when SF, else 32.
    pub const fn reg_width(&self) -> AccessWidth {
        if self.sf {
            AccessWidth::Qword
        } else {
            AccessWidth::Dword
        }
    }

    /// The value a load of `value` leaves in the destination register: truncated to the
    /// access width, sign-extended when SSE (to 64 bits when SF, to 32 bits otherwise), and
    /// a 32-bit destination zero-extended to 64 bits (as every `w` register write).
    pub const fn load_result(&self, value: u64) -> u64 {
        let v = value & self.width.mask();
        let v = if self.sign_extend {
            self.width.sign_extend(v)
        } else {
            v
        };
        if self.sf {
            v
        } else {
            v & 0xffff_ffff
        }
    }
}

/// What the backend does with a stage-2 data or instruction abort, given the syndrome and
/// what the stage-2 table says about the faulting IPA.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AbortAction {
    /// The table allows the access: a stale TLB entry. Flush and retry (once).
    Retry,
    /// Report a `NestedPageFault` (mapped without the permission, or the guest's own
    /// stage-1 walk faulted in stage 2).
    NestedPageFault,
    /// Unmapped, and the syndrome describes the access: an `MmioRead`/`MmioWrite`.
    Mmio,
    /// A cache maintenance instruction on unmapped space: nothing to do, skip it.
    SkipCacheMaintenance,
    /// Unmapped, but `ISV` = 0: the backend cannot emulate the access (`Err`).
    NoSyndrome,
    /// A fault kind the backend does not handle (address size, external abort, ...): `Err`.
    Unhandled,
}

/// Classifies a data abort `d` on an IPA the table maps with `table` (`None`: unmapped).
pub fn classify_data_abort(d: &DataAbort, table: Option<MapFlags>) -> AbortAction {
    let needed = if d.write {
        MapFlags::WRITE
    } else {
        MapFlags::READ
    };
    let allowed = table.map(|f| f.contains(needed));
    let stage2 = matches!(
        d.kind,
        FaultKind::Translation | FaultKind::Permission | FaultKind::AccessFlag
    );
    match d.kind {
        _ if !stage2 => AbortAction::Unhandled,
        _ if allowed == Some(true) => AbortAction::Retry,
        _ if d.s1ptw => AbortAction::NestedPageFault,
        FaultKind::Translation if allowed.is_none() => {
            if d.cache_maintenance {
                AbortAction::SkipCacheMaintenance
            } else if d.isv {
                AbortAction::Mmio
            } else {
                AbortAction::NoSyndrome
            }
        }
        _ => AbortAction::NestedPageFault,
    }
}

/// Classifies an instruction abort with fault status `ifsc` (ISS bits 5:0) and S1PTW
/// (`s1ptw`, ISS bit 7) on an IPA the table maps with `table`: the fetch needs execute
/// permission, a stage-1 walk needs read permission.
pub fn classify_insn_abort(ifsc: u64, s1ptw: bool, table: Option<MapFlags>) -> AbortAction {
    let needed = if s1ptw {
        MapFlags::READ
    } else {
        MapFlags::EXECUTE
    };
    match FaultKind::from_fsc(ifsc) {
        FaultKind::Translation | FaultKind::Permission | FaultKind::AccessFlag => {
            if table.is_some_and(|f| f.contains(needed)) {
                AbortAction::Retry
            } else {
                AbortAction::NestedPageFault
            }
        }
        _ => AbortAction::Unhandled,
    }
}

/// The faulting intermediate physical address of a stage-2 abort: `HPFAR_EL2.FIPA`
/// (bits 43:4, IPA bits 51:12) combined with the page offset from `FAR_EL2`.
pub const fn fault_ipa(hpfar: u64, far: u64) -> u64 {
    ((hpfar & 0x0000_0fff_ffff_fff0) << 8) | (far & 0xfff)
}

/// A trapped `MSR`/`MRS` (EC 0x18).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SysRegAccess {
    /// The register, packed as [`SysRegAddr`] documents for AArch64.
    pub addr: SysRegAddr,
    /// Rt (bits 9:5): the general-purpose register (31 = `xzr`).
    pub reg: usize,
    /// Direction (bit 0): `true` for a read (`MRS`), `false` for a write (`MSR`).
    pub read: bool,
}

/// The bits of the EC 0x18 ISS that name the register: Op0, Op2, Op1, CRn, CRm.
pub const SYSREG_ADDR_MASK: u64 = 0x003f_fc1e;

impl SysRegAccess {
    /// Decodes the ISS of a trapped `MSR`/`MRS`.
    pub const fn decode(iss: u64) -> Self {
        Self {
            addr: SysRegAddr((iss & SYSREG_ADDR_MASK) as usize),
            reg: ((iss >> 5) & 0x1f) as usize,
            read: iss & 1 != 0,
        }
    }
}

/// The [`SysRegAddr`] of the register `S<op0>_<op1>_C<crn>_C<crm>_<op2>`.
pub const fn sysreg(op0: u64, op1: u64, crn: u64, crm: u64, op2: u64) -> SysRegAddr {
    SysRegAddr(
        (((op0 & 3) << 20)
            | ((op2 & 7) << 17)
            | ((op1 & 7) << 14)
            | ((crn & 0xf) << 10)
            | ((crm & 0xf) << 1)) as usize,
    )
}

/// Well-known system registers in [`SysRegAddr`] packing.
pub mod regs {
    use super::sysreg;
    use axvcpu::SysRegAddr;

    /// `ID_AA64MMFR0_EL1` (trapped by `HCR_EL2.TID3`).
    pub const ID_AA64MMFR0_EL1: SysRegAddr = sysreg(3, 0, 0, 7, 0);
    /// `ID_AA64PFR0_EL1` (trapped by `HCR_EL2.TID3`).
    pub const ID_AA64PFR0_EL1: SysRegAddr = sysreg(3, 0, 0, 4, 0);
    /// `CONTEXTIDR_EL1` (writes trapped by `HCR_EL2.TVM`).
    pub const CONTEXTIDR_EL1: SysRegAddr = sysreg(3, 0, 13, 0, 1);
    /// `SCTLR_EL1` (writes trapped by `HCR_EL2.TVM`).
    pub const SCTLR_EL1: SysRegAddr = sysreg(3, 0, 1, 0, 0);
}

/// A trapped `WFI`/`WFE` (EC 0x01, ISS bits 1:0 = TI).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wfx {
    /// `WFI` (TI = 0b00) or `WFIT` (0b10).
    Wfi,
    /// `WFE` (TI = 0b01) or `WFET` (0b11).
    Wfe,
}

impl Wfx {
    /// Decodes the ISS of a trapped wait instruction.
    pub const fn decode(iss: u64) -> Self {
        if iss & 1 == 0 {
            Self::Wfi
        } else {
            Self::Wfe
        }
    }
}

/// The 16-bit immediate of an `HVC` or `SMC` (ISS bits 15:0).
pub const fn imm16(iss: u64) -> u16 {
    (iss & 0xffff) as u16
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds a Data Abort ISS.
    fn dabt(isv: bool, sas: u64, sse: bool, srt: u64, sf: bool, wnr: bool, dfsc: u64) -> u64 {
        (isv as u64) << 24
            | sas << 22
            | (sse as u64) << 21
            | srt << 16
            | (sf as u64) << 15
            | (wnr as u64) << 6
            | dfsc
    }

    #[test]
    fn esr_fields() {
        // A data abort from a lower EL, 32-bit instruction, ISS 0x1234.
        let e = Esr((0x24 << 26) | (1 << 25) | 0x1234);
        assert_eq!(e.ec(), ec::DABT_LOWER);
        assert!(e.il());
        assert_eq!(e.insn_len(), 4);
        assert_eq!(e.iss(), 0x1234);
        assert_eq!(Esr(0x16 << 26).insn_len(), 2);
        // hvc #0x5a from AArch64: EC 0x16, IL 1, imm16 in the ISS.
        let hvc = Esr(0x5a00_005a);
        assert_eq!(hvc.ec(), ec::HVC64);
        assert_eq!(imm16(hvc.iss()), 0x5a);
    }

    #[test]
    fn fault_status_codes() {
        for l in 0..4 {
            assert_eq!(FaultKind::from_fsc(l), FaultKind::AddressSize);
            assert_eq!(FaultKind::from_fsc(0x04 | l), FaultKind::Translation);
            assert_eq!(FaultKind::from_fsc(0x08 | l), FaultKind::AccessFlag);
            assert_eq!(FaultKind::from_fsc(0x0c | l), FaultKind::Permission);
        }
        // Level -1 (FEAT_LPA2, 52-bit addresses with 4K granules): found by the comparison
        // with aarch64-esr-decoder (decode-check), which classifies them as these kinds.
        assert_eq!(FaultKind::from_fsc(0x29), FaultKind::AddressSize);
        assert_eq!(FaultKind::from_fsc(0x2b), FaultKind::Translation);
        assert_eq!(FaultKind::from_fsc(0x2a), FaultKind::Other(0x2a));
        assert_eq!(FaultKind::from_fsc(0x10), FaultKind::Other(0x10));
        assert_eq!(FaultKind::from_fsc(0x21), FaultKind::Other(0x21));
    }

    #[test]
    fn every_data_abort_width_register_and_extension() {
        let widths = [
            AccessWidth::Byte,
            AccessWidth::Word,
            AccessWidth::Dword,
            AccessWidth::Qword,
        ];
        for (sas, w) in widths.into_iter().enumerate() {
            for srt in 0..32 {
                for (sse, sf, wnr) in [
                    (false, false, false),
                    (true, false, false),
                    (true, true, false),
                    (false, true, true),
                ] {
                    let d = DataAbort::decode(dabt(true, sas as u64, sse, srt, sf, wnr, 0x06));
                    assert!(d.isv);
                    assert_eq!(d.width, w);
                    assert_eq!(d.reg, srt as usize);
                    assert_eq!(d.sign_extend, sse);
                    assert_eq!(d.sf, sf);
                    assert_eq!(d.write, wnr);
                    assert_eq!(d.kind, FaultKind::Translation);
                    assert!(!d.s1ptw);
                }
            }
        }
        let d = DataAbort::decode(dabt(false, 0, false, 0, false, true, 0x0f) | 1 << 7);
        assert!(!d.isv && d.s1ptw && d.write);
        assert_eq!(d.kind, FaultKind::Permission);
    }

    #[test]
    fn load_results_follow_sse_and_sf() {
        const V: u64 = 0xf1e2_d3c4_b5a6_9788;
        let load = |sas, sse, sf| DataAbort::decode(dabt(true, sas, sse, 1, sf, false, 7));
        // ldrb w1 / ldrh w1 / ldr w1 / ldr x1
        assert_eq!(load(0, false, false).load_result(V), 0x88);
        assert_eq!(load(1, false, false).load_result(V), 0x9788);
        assert_eq!(load(2, false, false).load_result(V), 0xb5a6_9788);
        assert_eq!(load(3, false, true).load_result(V), V);
        // ldrsb x1 / ldrsh x1 / ldrsw x1
        assert_eq!(load(0, true, true).load_result(V), 0xffff_ffff_ffff_ff88);
        assert_eq!(load(1, true, true).load_result(V), 0xffff_ffff_ffff_9788);
        assert_eq!(load(2, true, true).load_result(V), 0xffff_ffff_b5a6_9788);
        // ldrsb w1 / ldrsh w1: sign-extended to 32 bits, upper half zero.
        assert_eq!(load(0, true, false).load_result(V), 0xffff_ff88);
        assert_eq!(load(1, true, false).load_result(V), 0xffff_9788);
        assert_eq!(load(0, true, false).reg_width(), AccessWidth::Dword);
        assert_eq!(load(0, true, true).reg_width(), AccessWidth::Qword);
    }

    #[test]
    fn data_abort_actions() {
        use AbortAction::*;
        let rw = Some(MapFlags::READ | MapFlags::WRITE);
        let ro = Some(MapFlags::READ);
        let x = Some(MapFlags::EXECUTE);
        // (isv, wnr, dfsc, s1ptw, cm, table) -> action
        let cases = [
            (true, false, 0x05, false, false, None, Mmio),
            (true, true, 0x07, false, false, None, Mmio),
            (false, true, 0x06, false, false, None, NoSyndrome),
            (false, true, 0x06, false, true, None, SkipCacheMaintenance),
            (true, true, 0x0f, false, false, ro, NestedPageFault),
            (true, true, 0x06, false, false, ro, NestedPageFault),
            (true, false, 0x06, false, false, x, NestedPageFault),
            (true, false, 0x0e, false, false, rw, Retry),
            (true, true, 0x06, false, false, rw, Retry),
            (false, false, 0x06, true, false, None, NestedPageFault),
            (false, true, 0x0d, true, false, ro, NestedPageFault),
            (false, false, 0x06, true, false, ro, Retry),
            (true, false, 0x09, false, false, None, NestedPageFault),
            (true, false, 0x01, false, false, None, Unhandled),
            (true, false, 0x10, false, false, None, Unhandled),
            (true, false, 0x21, false, false, rw, Unhandled),
            (false, false, 0x10, true, false, None, Unhandled),
        ];
        for (i, (isv, wnr, dfsc, s1ptw, cm, table, want)) in cases.into_iter().enumerate() {
            let iss =
                dabt(isv, 3, false, 1, true, wnr, dfsc) | (s1ptw as u64) << 7 | (cm as u64) << 8;
            let d = DataAbort::decode(iss);
            assert_eq!(d.cache_maintenance, cm);
            assert_eq!(classify_data_abort(&d, table), want, "case {i}");
        }
    }

    #[test]
    fn instruction_abort_actions() {
        use AbortAction::*;
        let rw = Some(MapFlags::READ | MapFlags::WRITE);
        let rx = Some(MapFlags::READ | MapFlags::EXECUTE);
        assert_eq!(classify_insn_abort(0x06, false, None), NestedPageFault);
        assert_eq!(classify_insn_abort(0x0f, false, rw), NestedPageFault);
        assert_eq!(classify_insn_abort(0x0f, false, rx), Retry);
        assert_eq!(classify_insn_abort(0x06, true, rw), Retry);
        assert_eq!(classify_insn_abort(0x06, true, None), NestedPageFault);
        assert_eq!(classify_insn_abort(0x10, false, None), Unhandled);
        assert_eq!(classify_insn_abort(0x02, false, None), Unhandled);
    }

    #[test]
    fn stage2_fault_address() {
        // IPA 0x1234_5678: FIPA = IPA[47:12] in HPFAR bits 43:4.
        let hpfar = (0x1234_5678u64 >> 12) << 4;
        assert_eq!(fault_ipa(hpfar, 0xffff_0000_0000_0678), 0x1234_5678);
        // NS bit (63) and RES0 bits are ignored.
        assert_eq!(fault_ipa(hpfar | 1 << 63 | 0xf, 0x678), 0x1234_5678);
    }

    #[test]
    fn sysreg_packing_matches_the_iss() {
        // mrs x3, id_aa64mmfr0_el1: Op0 3, Op2 0, Op1 0, CRn 0, Rt 3, CRm 7, read.
        let iss = (3 << 20) | (3 << 5) | (7 << 1) | 1;
        let a = SysRegAccess::decode(iss);
        assert_eq!(a.addr, regs::ID_AA64MMFR0_EL1);
        assert_eq!(a.reg, 3);
        assert!(a.read);
        // msr contextidr_el1, x30: Op0 3, Op2 1, Op1 0, CRn 13, Rt 30, CRm 0, write.
        let iss = (3 << 20) | (1 << 17) | (13 << 10) | (30 << 5);
        let a = SysRegAccess::decode(iss);
        assert_eq!(a.addr, regs::CONTEXTIDR_EL1);
        assert_eq!(a.reg, 30);
        assert!(!a.read);
        assert_eq!(regs::CONTEXTIDR_EL1.0, 0x0032_3400);
        assert_eq!(regs::SCTLR_EL1.0, 0x0030_0400);
    }

    #[test]
    fn wait_instructions() {
        assert_eq!(Wfx::decode(0), Wfx::Wfi);
        assert_eq!(Wfx::decode(1), Wfx::Wfe);
        assert_eq!(Wfx::decode(2), Wfx::Wfi);
        assert_eq!(Wfx::decode(3), Wfx::Wfe);
    }
}
