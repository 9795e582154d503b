//! What a guest of a bare-metal x86 backend sees of CPUID: the host's answer, filtered to
//! what the backend virtualises, plus a hypervisor leaf. SVM and VMX intercept CPUID and
//! answer it with [`filter`], so a guest (Linux) does not find and use a feature the
//! hypervisor does not give it.
//!
//! ```
//! use axvcpu_x86::cpuid::{filter, Regs, SIGNATURE};
//!
//! // Leaf 1 of a host with VMX, MONITOR, x2APIC, XSAVE and AVX: none of them reach the
//! // guest; the hypervisor bit and TSC-deadline (the emulated local APIC's) are set.
//! let host = Regs { eax: 0x806f8, ebx: 0, ecx: (1 << 5) | (1 << 3) | (1 << 21) | (1 << 26) | (1 << 28) | 1, edx: 0 };
//! let seen = filter(1, 0, host);
//! assert_eq!(seen.ecx, 1 | (1 << 24) | (1 << 31));
//! // The hypervisor leaf names the hypervisor.
//! let hv = filter(0x4000_0000, 0, Regs::default());
//! assert_eq!((hv.ebx, hv.ecx, hv.edx), (SIGNATURE[0], SIGNATURE[1], SIGNATURE[2]));
//! ```
//!
//! Hidden, and why:
//! - VMX, SMX, SVM: no nested virtualisation.
//! - MONITOR/MWAIT: intercepted (the guest gets #UD); a guest idles with `hlt`.
//! - XSAVE, OSXSAVE, AVX and what needs XSAVE (AVX2, AVX-512, PKU, ...): the extended state
//!   is not switched between vCPUs and `XCR0` is the host's; the guest uses FXSAVE/SSE.
//! - x2APIC, ARAT: the local APIC a guest sees is an xAPIC at 0xfee0_0000 that the
//!   hypervisor emulates through MMIO exits (the backends decode its ICR writes into
//!   `SendIPI`/`CpuUp`). The APIC bit is shown, and TSC-deadline is offered even where the
//!   host lacks it (QEMU's TCG does): the timer's deadline MSR (`IA32_TSC_DEADLINE`, 0x6e0)
//!   reaches the hypervisor as `SysRegRead`/`SysRegWrite`, and its emulated timer needs no
//!   calibration by the guest. A hypervisor that emulates no local APIC tells its guest so
//!   (Linux: `nolapic`).
//! - MCE/MCA, MTRR, PDCM, perf/debug-store, architectural PMU, TSC_ADJUST: their MSRs are
//!   not given.
//! - RDTSCP, RDPID: `TSC_AUX` is not switched.
//! - Speculation controls (SPEC_CTRL, IBPB, STIBP, SSBD, ARCH_CAPABILITIES, ...): their
//!   MSRs are not given.
//! - Leaves the hypervisor does not describe (cache/topology leaves are passed as is).

/// The four registers of a CPUID answer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Regs {
    /// `eax`.
    pub eax: u32,
    /// `ebx`.
    pub ebx: u32,
    /// `ecx`.
    pub ecx: u32,
    /// `edx`.
    pub edx: u32,
}

/// The hypervisor leaf's signature (`ebx`, `ecx`, `edx` of leaf `0x4000_0000`): "AxVCpuAxVCpu".
pub const SIGNATURE: [u32; 3] = [
    u32::from_le_bytes(*b"AxVC"),
    u32::from_le_bytes(*b"puAx"),
    u32::from_le_bytes(*b"VCpu"),
];
/// The highest hypervisor leaf.
pub const HYPERVISOR_MAX: u32 = 0x4000_0001;

const fn bits(list: &[u32]) -> u32 {
    let mut m = 0;
    let mut i = 0;
    while i < list.len() {
        m |= 1 << list[i];
        i += 1;
    }
    m
}

/// Leaf 1 `ecx`: MONITOR 3, DS-CPL 4, VMX 5, SMX 6, EST 7, TM2 8, PDCM 15, x2APIC 21,
/// XSAVE 26, OSXSAVE 27, AVX 28, F16C 29.
const L1_ECX_HIDE: u32 = bits(&[3, 4, 5, 6, 7, 8, 15, 21, 26, 27, 28, 29]);
/// Leaf 1 `edx`: MCE 7, MTRR 12, MCA 14, ACPI (thermal) 22, TM 29, PBE 31, DS 21.
const L1_EDX_HIDE: u32 = bits(&[7, 12, 14, 21, 22, 29, 31]);
/// Leaf 7.0 `ebx`: TSC_ADJUST 1, AVX2 5, RDT-M 12, MPX 14, RDT-A 15, AVX-512
/// 16,17,21,26,27,28,30,31, Intel PT 25.
const L7_EBX_HIDE: u32 = bits(&[1, 5, 12, 14, 15, 16, 17, 21, 25, 26, 27, 28, 30, 31]);
/// Leaf 7.0 `ebx` bit 10, INVPCID: kept here; a backend that cannot let the guest execute
/// it (VMX without its control) clears it.
pub const L7_EBX_INVPCID: u32 = 1 << 10;
/// Leaf 7.0 `ecx`: AVX-512 VBMI 1, UMIP 2 (kept), PKU 3, OSPKE 4, WAITPKG 5, AVX-512
/// VBMI2 6, CET-SS 7, GFNI/VAES/VPCLMULQDQ on AVX 9,10, AVX-512 VNNI 11, BITALG 12, TME 13,
/// VPOPCNTDQ 14, LA57 16, RDPID 22, KL 23, MOVDIRI 27, MOVDIR64B 28, ENQCMD 29, PKS 31.
const L7_ECX_HIDE: u32 = bits(&[
    1, 3, 4, 5, 6, 7, 9, 10, 11, 12, 13, 14, 16, 22, 23, 27, 28, 29, 31,
]);
/// Leaf 7.0 `edx`: AVX-512 2,3,8,23, SRBDS/MD_CLEAR 9,10, TSX ctrl 11, hybrid 15, PCONFIG
/// 18, CET-IBT 20, AMX 22,24,25, speculation controls 26..31.
const L7_EDX_HIDE: u32 = bits(&[
    2, 3, 8, 9, 10, 11, 15, 18, 20, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31,
]);
/// Leaf 1 `ecx` bits the guest always sees: TSC-deadline 24, hypervisor 31.
const L1_ECX_ADD: u32 = bits(&[24, 31]);
/// Leaf 0x8000_0001 `ecx`: SVM 2, ExtApicSpace 3, IBS 10, SKINIT 12, WDT 13, LWP 15,
/// TCE 17, NodeId 19, TBM 21, TopoExt 22, PerfCtrCore 23, PerfCtrNB 24, DBX 26, PerfTSC 27,
/// PerfCtrL2 28, MONITORX 29.
const EXT1_ECX_HIDE: u32 = bits(&[2, 3, 10, 12, 13, 15, 17, 19, 21, 22, 23, 24, 26, 27, 28, 29]);
/// Leaf 0x8000_0001 `edx`: MCE 7, MTRR 12, MCA 14, RDTSCP 27.
const EXT1_EDX_HIDE: u32 = bits(&[7, 12, 14, 27]);

/// The guest's answer to CPUID leaf `leaf`, subleaf `sub`, given the host's answer `host`.
pub fn filter(leaf: u32, sub: u32, host: Regs) -> Regs {
    let mut r = host;
    match leaf {
        1 => {
            r.ecx &= !L1_ECX_HIDE;
            // The hypervisor bit, and TSC-deadline whatever the host has: the timer is the
            // emulated local APIC's (its MSR traps), not the host's.
            r.ecx |= L1_ECX_ADD;
            r.edx &= !L1_EDX_HIDE;
            // Initial APIC id and logical count are the caller's to set (vCPU id).
            r.ebx &= 0x0000_ffff;
        }
        // MONITOR/MWAIT, thermal/power, architectural PMU, extended state, PT, SGX,
        // hardware feedback: not given.
        5 | 6 | 0xa | 0xd | 0x12 | 0x14 | 0x1b | 0x1d | 0x1e | 0x20 => r = Regs::default(),
        7 => {
            if sub == 0 {
                r.eax = 0;
                r.ebx &= !L7_EBX_HIDE;
                r.ecx &= !L7_ECX_HIDE;
                r.edx &= !L7_EDX_HIDE;
            } else {
                r = Regs::default();
            }
        }
        0x4000_0000 => {
            r = Regs {
                eax: HYPERVISOR_MAX,
                ebx: SIGNATURE[0],
                ecx: SIGNATURE[1],
                edx: SIGNATURE[2],
            }
        }
        0x4000_0001..=0x4fff_ffff => r = Regs::default(),
        0x8000_0001 => {
            r.ecx &= !EXT1_ECX_HIDE;
            r.edx &= !EXT1_EDX_HIDE;
        }
        // AMD: the SVM leaf, speculation-control bits of 0x8000_0008 `ebx`, encrypted
        // memory, extended features (none of them given).
        0x8000_000a | 0x8000_001f | 0x8000_0021 => r = Regs::default(),
        0x8000_0008 => r.ebx = 0,
        _ => {}
    }
    r
}

/// [`filter`] with leaf 1's initial APIC id (`ebx[31:24]`) set to `apic_id`.
pub fn filter_for(leaf: u32, sub: u32, host: Regs, apic_id: u8) -> Regs {
    let mut r = filter(leaf, sub, host);
    if leaf == 1 {
        r.ebx |= u32::from(apic_id) << 24;
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn svm_and_rdtscp_are_hidden_and_syscall_nx_lm_kept() {
        let host = Regs {
            eax: 0,
            ebx: 0,
            ecx: (1 << 2) | 1,
            edx: (1 << 11) | (1 << 20) | (1 << 29) | (1 << 27),
        };
        let r = filter(0x8000_0001, 0, host);
        assert_eq!(r.ecx, 1);
        assert_eq!(r.edx, (1 << 11) | (1 << 20) | (1 << 29));
    }

    #[test]
    fn leaf_1_keeps_sse_and_sets_the_hypervisor_bit_and_apic_id() {
        let host = Regs {
            eax: 0x600,
            ebx: 0x0102_0800,
            ecx: 1 | (1 << 19) | (1 << 26) | (1 << 21),
            edx: (1 << 25) | (1 << 26) | (1 << 9) | (1 << 12),
        };
        let r = filter_for(1, 0, host, 1);
        // TSC-deadline offered, x2APIC and XSAVE hidden, the hypervisor bit set.
        assert_eq!(r.ecx, 1 | (1 << 19) | (1 << 24) | (1 << 31));
        // The local APIC is shown (an emulated xAPIC), MTRR hidden.
        assert_eq!(r.edx, (1 << 25) | (1 << 26) | (1 << 9));
        assert_eq!(r.ebx, 0x0100_0800);
    }

    #[test]
    fn xsave_leaf_and_hypervisor_subleaves_are_empty() {
        let host = Regs {
            eax: 7,
            ebx: 1,
            ecx: 2,
            edx: 3,
        };
        assert_eq!(filter(0xd, 0, host), Regs::default());
        assert_eq!(filter(0x4000_0001, 0, host), Regs::default());
        assert_eq!(filter(7, 1, host), Regs::default());
        assert_eq!(filter(0x8000_0002, 0, host), host);
    }
}
