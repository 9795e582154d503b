//! PSCI (Arm DEN 0022) and the SMCCC architecture calls (Arm DEN 0028: `SMCCC_VERSION`,
//! `SMCCC_ARCH_FEATURES`) as the guest sees them, over `HVC #0` or a trapped `SMC`: which
//! calls become exits and which the backend answers itself. Plain functions, tested on
//! any host.

/// PSCI function ids (SMC32 `0x8400_00xx`, SMC64 `0xC400_00xx`).
pub mod fid {
    /// `PSCI_VERSION`.
    pub const VERSION: u32 = 0x8400_0000;
    /// `CPU_SUSPEND` (32-bit).
    pub const CPU_SUSPEND32: u32 = 0x8400_0001;
    /// `CPU_SUSPEND` (64-bit).
    pub const CPU_SUSPEND64: u32 = 0xc400_0001;
    /// `CPU_OFF`.
    pub const CPU_OFF: u32 = 0x8400_0002;
    /// `CPU_ON` (32-bit).
    pub const CPU_ON32: u32 = 0x8400_0003;
    /// `CPU_ON` (64-bit).
    pub const CPU_ON64: u32 = 0xc400_0003;
    /// `AFFINITY_INFO` (32-bit).
    pub const AFFINITY_INFO32: u32 = 0x8400_0004;
    /// `AFFINITY_INFO` (64-bit).
    pub const AFFINITY_INFO64: u32 = 0xc400_0004;
    /// `MIGRATE_INFO_TYPE`.
    pub const MIGRATE_INFO_TYPE: u32 = 0x8400_0006;
    /// `SYSTEM_OFF`.
    pub const SYSTEM_OFF: u32 = 0x8400_0008;
    /// `SYSTEM_RESET`.
    pub const SYSTEM_RESET: u32 = 0x8400_0009;
    /// `PSCI_FEATURES`.
    pub const FEATURES: u32 = 0x8400_000a;
    /// `SMCCC_VERSION`.
    pub const SMCCC_VERSION: u32 = 0x8000_0000;
    /// `SMCCC_ARCH_FEATURES`.
    pub const SMCCC_ARCH_FEATURES: u32 = 0x8000_0001;
}

/// PSCI return codes.
pub mod ret {
    /// Success.
    pub const SUCCESS: i64 = 0;
    /// The function is not implemented (also the SMCCC "unknown function" answer).
    pub const NOT_SUPPORTED: i64 = -1;
}

/// The PSCI version the backend reports: 1.0.
pub const VERSION_1_0: u64 = 0x0001_0000;
/// The SMCCC version the backend reports: 1.1.
pub const SMCCC_1_1: u64 = 0x0001_0001;

/// What a guest's PSCI call (or any other `SMC`) means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PsciCall {
    /// `CPU_ON(target_mpidr, entry, context_id)`.
    CpuOn {
        /// The target's MPIDR.
        target: u64,
        /// Where it starts.
        entry: u64,
        /// What it finds in `x0`.
        context_id: u64,
    },
    /// `CPU_OFF`.
    CpuOff,
    /// `AFFINITY_INFO(target_mpidr, lowest_level)`: only the hypervisor knows which vCPUs
    /// are on, so it answers (`0` on, `1` off, `2` on pending).
    AffinityInfo,
    /// `SYSTEM_OFF` or `SYSTEM_RESET`.
    SystemDown,
    /// Answered by the backend: this value goes to `x0`.
    Answer(u64),
}

/// Whether `x0` names a PSCI function (the PSCI range of the SMCCC standard secure
/// service calls, 32- or 64-bit, with the upper 32 bits of `x0` clear).
pub const fn is_psci(x0: u64) -> bool {
    let f = x0 & !0x4000_001f;
    x0 >> 32 == 0 && f == 0x8400_0000
}

/// Whether `x0` names a call [`classify`] handles: PSCI, or an SMCCC architecture call
/// (`0x8000_0000..=0x8000_ffff`).
pub const fn is_firmware(x0: u64) -> bool {
    // Both ranges have bit 31 set and the upper half clear: one test sends every other
    // hypercall on its way.
    x0 >> 31 == 1 && (is_psci(x0) || x0 & !0xffff == 0x8000_0000)
}

fn implemented(f: u32) -> bool {
    matches!(
        f,
        fid::VERSION
            | fid::CPU_OFF
            | fid::CPU_ON32
            | fid::CPU_ON64
            | fid::MIGRATE_INFO_TYPE
            | fid::SYSTEM_OFF
            | fid::SYSTEM_RESET
            | fid::FEATURES
            | fid::AFFINITY_INFO32
            | fid::AFFINITY_INFO64
            | fid::SMCCC_VERSION
    )
}

/// Classifies a call from the guest's `x0..x3`. Any function id the backend does not
/// implement (PSCI or not) is answered with `NOT_SUPPORTED`.
pub fn classify(x: [u64; 4]) -> PsciCall {
    let not_supported = PsciCall::Answer(ret::NOT_SUPPORTED as u64);
    if x[0] >> 32 != 0 {
        return not_supported;
    }
    let f = x[0] as u32;
    // 32-bit calls take 32-bit arguments.
    let arg = |v: u64| {
        if f & 0x4000_0000 == 0 {
            v & 0xffff_ffff
        } else {
            v
        }
    };
    match f {
        fid::VERSION => PsciCall::Answer(VERSION_1_0),
        fid::CPU_ON32 | fid::CPU_ON64 => PsciCall::CpuOn {
            target: arg(x[1]),
            entry: arg(x[2]),
            context_id: arg(x[3]),
        },
        fid::CPU_OFF => PsciCall::CpuOff,
        fid::AFFINITY_INFO32 | fid::AFFINITY_INFO64 => PsciCall::AffinityInfo,
        fid::SMCCC_VERSION => PsciCall::Answer(SMCCC_1_1),
        // Of the architecture calls, only these two; no firmware workaround is offered
        // (`NOT_SUPPORTED` for SMCCC_ARCH_WORKAROUND_1/2/3, SOC_ID).
        fid::SMCCC_ARCH_FEATURES => match x[1] {
            v if v == fid::SMCCC_VERSION as u64 || v == fid::SMCCC_ARCH_FEATURES as u64 => {
                PsciCall::Answer(ret::SUCCESS as u64)
            }
            _ => not_supported,
        },
        fid::SYSTEM_OFF | fid::SYSTEM_RESET => PsciCall::SystemDown,
        // 2: no Trusted OS, migration not required.
        fid::MIGRATE_INFO_TYPE => PsciCall::Answer(2),
        fid::FEATURES => {
            let asked = x[1];
            if asked >> 32 == 0 && implemented(asked as u32) {
                PsciCall::Answer(ret::SUCCESS as u64)
            } else {
                not_supported
            }
        }
        _ => not_supported,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_psci_range() {
        assert!(is_psci(0x8400_0000));
        assert!(is_psci(0xc400_0003));
        assert!(is_psci(0x8400_001f));
        assert!(!is_psci(0x8400_0020));
        assert!(!is_psci(0x8000_0000));
        assert!(!is_psci(0x5250));
        assert!(!is_psci(0x1_8400_0000));
    }

    #[test]
    fn calls_and_answers() {
        assert_eq!(
            classify([fid::CPU_ON64 as u64, 1, 0x4000_0040, 0x0a11_ce00]),
            PsciCall::CpuOn {
                target: 1,
                entry: 0x4000_0040,
                context_id: 0x0a11_ce00
            }
        );
        assert_eq!(
            classify([fid::CPU_ON32 as u64, 1 << 32 | 1, 0x4000_0040, u64::MAX]),
            PsciCall::CpuOn {
                target: 1,
                entry: 0x4000_0040,
                context_id: 0xffff_ffff
            }
        );
        assert_eq!(classify([fid::CPU_OFF as u64, 0, 0, 0]), PsciCall::CpuOff);
        assert_eq!(
            classify([fid::SYSTEM_OFF as u64, 0, 0, 0]),
            PsciCall::SystemDown
        );
        assert_eq!(
            classify([fid::SYSTEM_RESET as u64, 0, 0, 0]),
            PsciCall::SystemDown
        );
        assert_eq!(
            classify([fid::VERSION as u64, 0, 0, 0]),
            PsciCall::Answer(VERSION_1_0)
        );
        let ns = PsciCall::Answer(u64::MAX);
        assert_eq!(
            classify([fid::FEATURES as u64, fid::CPU_ON64 as u64, 0, 0]),
            PsciCall::Answer(0)
        );
        assert_eq!(
            classify([fid::FEATURES as u64, fid::CPU_SUSPEND64 as u64, 0, 0]),
            ns
        );
        assert_eq!(classify([fid::CPU_SUSPEND32 as u64, 0, 0, 0]), ns);
        assert_eq!(
            classify([fid::AFFINITY_INFO64 as u64, 0, 0, 0]),
            PsciCall::AffinityInfo
        );
        assert_eq!(
            classify([fid::FEATURES as u64, fid::AFFINITY_INFO32 as u64, 0, 0]),
            PsciCall::Answer(0)
        );
        assert_eq!(
            classify([fid::FEATURES as u64, fid::SMCCC_VERSION as u64, 0, 0]),
            PsciCall::Answer(0)
        );
        assert_eq!(
            classify([fid::SMCCC_VERSION as u64, 0, 0, 0]),
            PsciCall::Answer(SMCCC_1_1)
        );
        assert_eq!(
            classify([
                fid::SMCCC_ARCH_FEATURES as u64,
                fid::SMCCC_VERSION as u64,
                0,
                0
            ]),
            PsciCall::Answer(0)
        );
        // SMCCC_ARCH_WORKAROUND_1: no firmware mitigation.
        assert_eq!(
            classify([fid::SMCCC_ARCH_FEATURES as u64, 0x8000_8000, 0, 0]),
            ns
        );
        assert!(is_firmware(0x8000_0000) && is_firmware(0x8000_ffff));
        assert!(is_firmware(0x8400_0004) && !is_firmware(0x8001_0000));
        assert!(!is_firmware(0x8600_ff01) && !is_firmware(0x4143));
        assert_eq!(classify([0x8400_001f, 0, 0, 0]), ns);
        assert_eq!(classify([0x1_8400_0008, 0, 0, 0]), ns);
    }
}
