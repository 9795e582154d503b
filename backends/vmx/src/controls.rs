//! The VMX controls, computed from the capability MSRs (Intel SDM vol. 3C, appendix A):
//! never a hard-coded reserved bit. [`VmxCaps`] holds what a CPU reports; [`Controls::compute`]
//! is a pure function of it, tested with the values Bochs 2.7 reports.

use axvcpu::{VCpuError, VCpuResult};

/// The capability MSRs.
pub mod msr {
    /// `IA32_FEATURE_CONTROL`.
    pub const FEATURE_CONTROL: u32 = 0x3a;
    /// `IA32_VMX_BASIC`.
    pub const BASIC: u32 = 0x480;
    /// `IA32_VMX_PINBASED_CTLS`.
    pub const PINBASED: u32 = 0x481;
    /// `IA32_VMX_PROCBASED_CTLS`.
    pub const PROCBASED: u32 = 0x482;
    /// `IA32_VMX_EXIT_CTLS`.
    pub const EXIT: u32 = 0x483;
    /// `IA32_VMX_ENTRY_CTLS`.
    pub const ENTRY: u32 = 0x484;
    /// `IA32_VMX_CR0_FIXED0`.
    pub const CR0_FIXED0: u32 = 0x486;
    /// `IA32_VMX_CR0_FIXED1`.
    pub const CR0_FIXED1: u32 = 0x487;
    /// `IA32_VMX_CR4_FIXED0`.
    pub const CR4_FIXED0: u32 = 0x488;
    /// `IA32_VMX_CR4_FIXED1`.
    pub const CR4_FIXED1: u32 = 0x489;
    /// `IA32_VMX_PROCBASED_CTLS2`.
    pub const PROCBASED2: u32 = 0x48b;
    /// `IA32_VMX_EPT_VPID_CAP`.
    pub const EPT_VPID_CAP: u32 = 0x48c;
    /// `IA32_VMX_TRUE_PINBASED_CTLS`.
    pub const TRUE_PINBASED: u32 = 0x48d;
    /// `IA32_VMX_TRUE_PROCBASED_CTLS`.
    pub const TRUE_PROCBASED: u32 = 0x48e;
    /// `IA32_VMX_TRUE_EXIT_CTLS`.
    pub const TRUE_EXIT: u32 = 0x48f;
    /// `IA32_VMX_TRUE_ENTRY_CTLS`.
    pub const TRUE_ENTRY: u32 = 0x490;
}

/// Pin-based controls.
pub mod pin {
    /// External interrupts exit.
    pub const EXTERNAL_INTERRUPT: u32 = 1 << 0;
    /// NMIs exit.
    pub const NMI: u32 = 1 << 3;
    /// The VMX-preemption timer counts down in the guest and exits at zero.
    pub const PREEMPTION_TIMER: u32 = 1 << 6;
}

/// Primary processor-based controls.
pub mod proc {
    /// Exit when the guest can take an interrupt.
    pub const INTERRUPT_WINDOW: u32 = 1 << 2;
    /// HLT exits.
    pub const HLT: u32 = 1 << 7;
    /// INVLPG exits.
    pub const INVLPG: u32 = 1 << 9;
    /// MWAIT exits.
    pub const MWAIT: u32 = 1 << 10;
    /// RDTSC exits.
    pub const RDTSC: u32 = 1 << 12;
    /// MOV to CR3 exits.
    pub const CR3_LOAD: u32 = 1 << 15;
    /// MOV from CR3 exits.
    pub const CR3_STORE: u32 = 1 << 16;
    /// MOV to CR8 exits.
    pub const CR8_LOAD: u32 = 1 << 19;
    /// MOV from CR8 exits.
    pub const CR8_STORE: u32 = 1 << 20;
    /// TPR shadow.
    pub const TPR_SHADOW: u32 = 1 << 21;
    /// Exit when the guest can take an NMI.
    pub const NMI_WINDOW: u32 = 1 << 22;
    /// Every I/O instruction exits.
    pub const UNCONDITIONAL_IO: u32 = 1 << 24;
    /// I/O bitmaps decide which ports exit.
    pub const IO_BITMAPS: u32 = 1 << 25;
    /// MSR bitmaps decide which MSRs exit.
    pub const MSR_BITMAPS: u32 = 1 << 28;
    /// MONITOR exits.
    pub const MONITOR: u32 = 1 << 29;
    /// The secondary controls apply.
    pub const SECONDARY: u32 = 1 << 31;
}

/// Secondary processor-based controls.
pub mod proc2 {
    /// EPT.
    pub const EPT: u32 = 1 << 1;
    /// RDTSCP does not #UD.
    pub const RDTSCP: u32 = 1 << 3;
    /// VPID.
    pub const VPID: u32 = 1 << 5;
    /// WBINVD exits.
    pub const WBINVD: u32 = 1 << 6;
    /// Unrestricted guest (real mode, paging off).
    pub const UNRESTRICTED_GUEST: u32 = 1 << 7;
    /// INVPCID does not #UD (with CPUID's INVPCID bit, which the vCPU clears without it).
    pub const INVPCID: u32 = 1 << 12;
}

/// VM-exit controls.
pub mod exit_ctl {
    /// The host is 64-bit.
    pub const HOST_64: u32 = 1 << 9;
    /// Acknowledge the interrupt at the exit (its vector in the exit information).
    pub const ACK_INTERRUPT: u32 = 1 << 15;
    /// Save the guest's IA32_EFER.
    pub const SAVE_EFER: u32 = 1 << 20;
    /// Load the host's IA32_EFER.
    pub const LOAD_EFER: u32 = 1 << 21;
}

/// VM-entry controls.
pub mod entry_ctl {
    /// The guest is in IA-32e mode (the processor stores `EFER.LMA` here at every exit).
    pub const IA32E_GUEST: u32 = 1 << 9;
    /// Entry to SMM.
    pub const SMM: u32 = 1 << 10;
    /// Deactivate dual-monitor treatment.
    pub const DUAL_MONITOR: u32 = 1 << 11;
    /// Load the guest's IA32_EFER.
    pub const LOAD_EFER: u32 = 1 << 15;
}

/// `IA32_VMX_EPT_VPID_CAP` bits.
pub mod ept_cap {
    /// Execute-only EPT pages.
    pub const EXECUTE_ONLY: u64 = 1 << 0;
    /// 4-level page walk.
    pub const WALK_4: u64 = 1 << 6;
    /// Write-back paging structures.
    pub const WB: u64 = 1 << 14;
    /// 2 MiB pages.
    pub const PAGE_2M: u64 = 1 << 16;
    /// 1 GiB pages.
    pub const PAGE_1G: u64 = 1 << 17;
    /// INVEPT.
    pub const INVEPT: u64 = 1 << 20;
    /// Accessed and dirty flags.
    pub const ACCESSED_DIRTY: u64 = 1 << 21;
    /// Single-context INVEPT.
    pub const INVEPT_SINGLE: u64 = 1 << 25;
    /// All-context INVEPT.
    pub const INVEPT_ALL: u64 = 1 << 26;
    /// INVVPID.
    pub const INVVPID: u64 = 1 << 32;
    /// Single-context INVVPID.
    pub const INVVPID_SINGLE: u64 = 1 << 41;
    /// All-context INVVPID.
    pub const INVVPID_ALL: u64 = 1 << 42;
}

/// `IA32_VMX_BASIC` bit 55: the TRUE_* capability MSRs exist.
pub const BASIC_TRUE_CTLS: u64 = 1 << 55;
/// `CR0.PE`.
pub const CR0_PE: u64 = 1 << 0;
/// `CR0.PG`.
pub const CR0_PG: u64 = 1 << 31;
/// `CR4.VMXE`.
pub const CR4_VMXE: u64 = 1 << 13;

/// What a CPU's VMX capability MSRs report. The four control capabilities are the TRUE_*
/// MSRs when `IA32_VMX_BASIC` bit 55 says they exist, the plain ones otherwise; each holds
/// the bits that must be 1 in its low half and the bits that may be 1 in its high half.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VmxCaps {
    /// `IA32_VMX_BASIC`.
    pub basic: u64,
    /// Pin-based controls.
    pub pin: u64,
    /// Primary processor-based controls.
    pub proc: u64,
    /// Secondary processor-based controls.
    pub proc2: u64,
    /// VM-exit controls.
    pub exit: u64,
    /// VM-entry controls.
    pub entry: u64,
    /// `IA32_VMX_EPT_VPID_CAP`.
    pub ept_vpid: u64,
    /// `IA32_VMX_CR0_FIXED0`: CR0 bits that must be 1 in VMX operation.
    pub cr0_fixed0: u64,
    /// `IA32_VMX_CR0_FIXED1`: CR0 bits that may be 1.
    pub cr0_fixed1: u64,
    /// `IA32_VMX_CR4_FIXED0`.
    pub cr4_fixed0: u64,
    /// `IA32_VMX_CR4_FIXED1`.
    pub cr4_fixed1: u64,
}

impl VmxCaps {
    /// Reads them with `rdmsr` (a real CPU's: `hw::rdmsr`; a test's: a table). Only for a
    /// CPU with VMX (CPUID.1:ECX.VMX), where the MSRs exist; the secondary controls and EPT
    /// capability are read only when the primary controls allow the secondary ones.
    pub fn read(mut rdmsr: impl FnMut(u32) -> u64) -> Self {
        let basic = rdmsr(msr::BASIC);
        let true_ctls = basic & BASIC_TRUE_CTLS != 0;
        let pick = |plain, tru| if true_ctls { tru } else { plain };
        let proc = rdmsr(pick(msr::PROCBASED, msr::TRUE_PROCBASED));
        let secondary = (proc >> 32) as u32 & proc::SECONDARY != 0;
        Self {
            basic,
            pin: rdmsr(pick(msr::PINBASED, msr::TRUE_PINBASED)),
            proc,
            proc2: if secondary { rdmsr(msr::PROCBASED2) } else { 0 },
            exit: rdmsr(pick(msr::EXIT, msr::TRUE_EXIT)),
            entry: rdmsr(pick(msr::ENTRY, msr::TRUE_ENTRY)),
            ept_vpid: if secondary {
                rdmsr(msr::EPT_VPID_CAP)
            } else {
                0
            },
            cr0_fixed0: rdmsr(msr::CR0_FIXED0),
            cr0_fixed1: rdmsr(msr::CR0_FIXED1),
            cr4_fixed0: rdmsr(msr::CR4_FIXED0),
            cr4_fixed1: rdmsr(msr::CR4_FIXED1),
        }
    }

    /// The VMCS revision identifier (bits 0..31 of `IA32_VMX_BASIC`), which the VMXON region
    /// and every VMCS start with.
    pub fn revision(&self) -> u32 {
        self.basic as u32 & 0x7fff_ffff
    }
}

/// The values the backend writes into every VMCS's control fields, and what else it learned
/// from the capabilities.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Controls {
    /// Pin-based controls.
    pub pin: u32,
    /// Primary processor-based controls, without [`proc::INTERRUPT_WINDOW`] (set while an
    /// interrupt waits for a window).
    pub proc: u32,
    /// Secondary processor-based controls.
    pub proc2: u32,
    /// VM-exit controls.
    pub exit: u32,
    /// VM-entry controls (with [`entry_ctl::IA32E_GUEST`]: the guest starts in long mode).
    pub entry: u32,
    /// The EPTP enables accessed/dirty flags.
    pub ept_accessed_dirty: bool,
    /// INVEPT flushes one EPTP (else all).
    pub invept_single: bool,
    /// INVVPID flushes one VPID (else all).
    pub invvpid_single: bool,
    /// Unrestricted guest is on: the guest may run with paging or protection off (a
    /// real-mode start, [`GuestBoot::RealMode`](axvcpu_x86::boot::GuestBoot::RealMode),
    /// needs it; long-mode guests do not).
    pub unrestricted_guest: bool,
    /// CR0 bits the guest may not change (the guest/host mask): fixed in VMX operation.
    /// With unrestricted guest PE is the guest's, and PG is too but stays in the mask: the
    /// backend traps its changes to keep `EFER.LMA` and the IA-32e-mode entry control in
    /// step (a guest going from real or protected mode to long mode, or back).
    pub cr0_mask: u64,
    /// CR0 bits that must be 1 in the guest (with unrestricted guest, not PE and PG).
    pub cr0_set: u64,
    /// CR4 bits the guest may not change: fixed in VMX operation (VMXE among them).
    pub cr4_mask: u64,
    /// CR4 bits that must be 1 in the guest.
    pub cr4_set: u64,
}

/// One control field: the bits that must be 1 (`cap`'s low half), plus `required`, plus the
/// `optional` bits `cap` allows; `Err` if a required bit may not be 1 or an `avoid` bit must
/// be 1 (the value is the offending bits).
fn adjust(
    cap: u64,
    required: u32,
    optional: u32,
    avoid: u32,
    what: [&'static str; 2],
) -> VCpuResult<u32> {
    let (must, may) = (cap as u32, (cap >> 32) as u32);
    if required & !may != 0 {
        return Err(VCpuError::unsupported(what[0]).with_value(u64::from(required & !may)));
    }
    if avoid & must != 0 {
        return Err(VCpuError::unsupported(what[1]).with_value(u64::from(avoid & must)));
    }
    Ok(must | required | (optional & may))
}

impl Controls {
    /// The controls for `caps`, or an `Err` naming what the CPU lacks.
    ///
    /// Required: external-interrupt and NMI exiting; HLT, MWAIT, MONITOR, CR8 and
    /// unconditional I/O exiting, MSR bitmaps, the secondary controls; EPT (4-level walk,
    /// write-back, 2 MiB and 1 GiB pages, INVEPT), VPID (INVVPID), WBINVD exiting; a 64-bit host, interrupts acknowledged at exit, `EFER` saved and
    /// loaded; a settable interrupt-window control. Refused when the CPU forces them on:
    /// CR3-load/store, INVLPG and RDTSC exiting, TPR shadow, I/O bitmaps, NMI-window
    /// exiting, entry to SMM. Used when allowed: unrestricted guest (real-mode starts), the
    /// VMX-preemption timer, RDTSCP, INVPCID, EPT accessed/dirty flags, single-context
    /// INVEPT/INVVPID.
    pub fn compute(caps: &VmxCaps) -> VCpuResult<Self> {
        let pin = adjust(
            caps.pin,
            pin::EXTERNAL_INTERRUPT | pin::NMI,
            pin::PREEMPTION_TIMER,
            0,
            [
                "VMX: external-interrupt or NMI exiting is not available (value: the bits)",
                "",
            ],
        )?;
        let proc = adjust(
            caps.proc,
            proc::HLT
                | proc::MWAIT
                | proc::MONITOR
                | proc::CR8_LOAD
                | proc::CR8_STORE
                | proc::UNCONDITIONAL_IO
                | proc::MSR_BITMAPS
                | proc::SECONDARY,
            0,
            proc::INTERRUPT_WINDOW
                | proc::NMI_WINDOW
                | proc::CR3_LOAD
                | proc::CR3_STORE
                | proc::INVLPG
                | proc::RDTSC
                | proc::TPR_SHADOW
                | proc::IO_BITMAPS,
            [
                "VMX: a processor-based control the backend needs is not available \
                 (HLT/MWAIT/MONITOR/CR8/I/O exiting, MSR bitmaps, secondary controls; value: the bits)",
                "VMX: the CPU forces a processor-based control the backend cannot handle \
                 (CR3/INVLPG/RDTSC exiting, TPR shadow, I/O bitmaps; value: the bits)",
            ],
        )?;
        if (caps.proc >> 32) as u32 & proc::INTERRUPT_WINDOW == 0 {
            return Err(VCpuError::unsupported(
                "VMX: interrupt-window exiting is not available",
            ));
        }
        let proc2 = adjust(
            caps.proc2,
            proc2::EPT | proc2::VPID | proc2::WBINVD,
            proc2::UNRESTRICTED_GUEST | proc2::RDTSCP | proc2::INVPCID,
            0,
            [
                "VMX: EPT, VPID or WBINVD exiting is not available \
                 (value: the missing secondary controls)",
                "",
            ],
        )?;
        let exit = adjust(
            caps.exit,
            exit_ctl::HOST_64 | exit_ctl::ACK_INTERRUPT | exit_ctl::SAVE_EFER | exit_ctl::LOAD_EFER,
            0,
            0,
            [
                "VMX: a VM-exit control the backend needs is not available \
                 (64-bit host, acknowledge interrupt, save/load EFER; value: the bits)",
                "",
            ],
        )?;
        let entry = adjust(
            caps.entry,
            entry_ctl::IA32E_GUEST | entry_ctl::LOAD_EFER,
            0,
            entry_ctl::SMM | entry_ctl::DUAL_MONITOR,
            [
                "VMX: a VM-entry control the backend needs is not available \
                 (IA-32e guest, load EFER; value: the bits)",
                "VMX: the CPU forces entry to SMM or dual-monitor deactivation",
            ],
        )?;
        use ept_cap as e;
        let ept = caps.ept_vpid;
        let needed = e::WALK_4 | e::WB | e::PAGE_2M | e::PAGE_1G | e::INVEPT | e::INVVPID;
        if ept & needed != needed {
            return Err(VCpuError::unsupported(
                "VMX: EPT lacks a 4-level walk, write-back, 2 MiB or 1 GiB pages, INVEPT or \
                 INVVPID (value: the missing IA32_VMX_EPT_VPID_CAP bits)",
            )
            .with_value(needed & !ept));
        }
        if ept & (e::INVEPT_SINGLE | e::INVEPT_ALL) == 0
            || ept & (e::INVVPID_SINGLE | e::INVVPID_ALL) == 0
        {
            return Err(VCpuError::unsupported(
                "VMX: neither single- nor all-context INVEPT/INVVPID",
            )
            .with_value(ept));
        }
        let cr0_fixed = caps.cr0_fixed0 | !caps.cr0_fixed1;
        let unrestricted_guest = proc2 & proc2::UNRESTRICTED_GUEST != 0;
        let guests = if unrestricted_guest {
            CR0_PE | CR0_PG
        } else {
            0
        };
        Ok(Self {
            pin,
            proc,
            proc2,
            exit,
            entry,
            ept_accessed_dirty: ept & e::ACCESSED_DIRTY != 0,
            invept_single: ept & e::INVEPT_SINGLE != 0,
            invvpid_single: ept & e::INVVPID_SINGLE != 0,
            unrestricted_guest,
            cr0_mask: (cr0_fixed & !(guests & CR0_PE)) | CR0_PG,
            cr0_set: caps.cr0_fixed0 & !guests,
            cr4_mask: caps.cr4_fixed0 | !caps.cr4_fixed1,
            cr4_set: caps.cr4_fixed0,
        })
    }
}

/// The capability MSR values Bochs 2.7 (`cpu: model=corei7_haswell_4770`) reports, as
/// `(msr, value)`. Measured there: `IA32_VMX_BASIC`'s revision (0x2b), the secondary
/// controls' allowed-1 half (0x0004_7fff) and `IA32_VMX_EPT_VPID_CAP`'s low half
/// (0x0633_4141). The rest follow Bochs's source: the SDM's default-1 bits in the low
/// halves, the features Bochs implements in the high halves.
pub const BOCHS_CAPS: [(u32, u64); 17] = [
    (msr::FEATURE_CONTROL, 0x5),
    (msr::BASIC, 0x00d8_1000_0000_002b),
    (msr::PINBASED, 0x0000_007f_0000_0016),
    (msr::PROCBASED, 0xfff9_fffe_0401_e172),
    (msr::EXIT, 0x007f_efff_0003_6dff),
    (msr::ENTRY, 0x0000_dfff_0000_11ff),
    (msr::CR0_FIXED0, 0x8000_0021),
    (msr::CR0_FIXED1, 0xffff_ffff),
    (msr::CR4_FIXED0, 0x2000),
    (msr::CR4_FIXED1, 0x0017_67ff),
    (msr::PROCBASED2, 0x0004_7fff_0000_0000),
    (msr::EPT_VPID_CAP, 0x0000_0f01_0633_4141),
    (msr::TRUE_PINBASED, 0x0000_007f_0000_0016),
    (msr::TRUE_PROCBASED, 0xfff9_fffe_0400_6172),
    (msr::TRUE_EXIT, 0x007f_efff_0003_6dfb),
    (msr::TRUE_ENTRY, 0x0000_dfff_0000_11fb),
    (0x485, 0), // IA32_VMX_MISC: unused by the backend
];

#[cfg(test)]
mod tests;
