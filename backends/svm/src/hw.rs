//! The host CPU's privileged registers and instructions the backend uses: the SVM MSRs
//! (`EFER`, `VM_CR`, `VM_HSAVE_PA`), CPUID's SVM features, the global interrupt flag, the
//! local APIC (fixed IPIs, the IRR).

use core::arch::asm;

use axvcpu::HostPhysAddr;
use axvcpu_x86::cpu::wrmsr;
pub use axvcpu_x86::cpu::{cpuid, efer, rdmsr, restore_flags, save_flags_cli, FxArea, MSR_EFER};
#[cfg(target_os = "none")]
pub use axvcpu_x86::cpu::{fxrstor, fxsave};

/// `VM_CR`.
pub const MSR_VM_CR: u32 = 0xc001_0114;
/// `VM_HSAVE_PA`.
pub const MSR_VM_HSAVE_PA: u32 = 0xc001_0117;
/// `EFER.NXE`.
pub const EFER_NXE: u64 = 1 << 11;
/// `EFER.SVME`.
pub const EFER_SVME: u64 = 1 << 12;
/// `VM_CR.SVMDIS`.
pub const VM_CR_SVMDIS: u64 = 1 << 4;

/// Writes `IA32_EFER`.
///
/// # Safety
/// `value` keeps what the host runs on (`LME`/`LMA`, `SCE` if the host uses `syscall`,
/// `NXE` while the host's page tables use the no-execute bit). Setting `SVME` needs a host
/// save area in `VM_HSAVE_PA` before the first `vmrun`; clearing it, that no guest runs on
/// this CPU (only `run` enters one).
pub unsafe fn write_efer(value: u64) {
    // SAFETY: the caller guarantees the new value keeps the host running.
    unsafe { wrmsr(MSR_EFER, value) }
}

/// Writes `VM_HSAVE_PA`: where `vmrun` saves the host's state and `#VMEXIT` reloads it.
///
/// # Safety
/// `pa` is 0 (SVM about to be, or already, disabled) or a 4 KiB frame the caller owns until
/// it writes this MSR again: the hardware writes there at every `vmrun`.
pub unsafe fn write_vm_hsave_pa(pa: HostPhysAddr) {
    // SAFETY: the caller guarantees the frame is the save area's alone.
    unsafe { wrmsr(MSR_VM_HSAVE_PA, pa.as_usize() as u64) }
}

/// Whether the CPU has SVM (`CPUID 8000_0001h ECX[2]`) with nested paging
/// (`CPUID 8000_000Ah EDX[0]`); the number of ASIDs when it does.
pub fn svm_with_np() -> Option<u32> {
    let (max_ext, ..) = cpuid(0x8000_0000, 0);
    if max_ext < 0x8000_000a {
        return None;
    }
    let (_, _, ecx, _) = cpuid(0x8000_0001, 0);
    if ecx & (1 << 2) == 0 {
        return None;
    }
    let (_, nasid, _, edx) = cpuid(0x8000_000a, 0);
    (edx & 1 != 0).then_some(nasid)
}

/// `clgi`: holds host interrupts (and NMIs) until `stgi`, whatever `RFLAGS.IF`.
///
/// # Safety
/// SVM is enabled on this CPU (`EFER.SVME`); the caller runs `stgi` again.
pub unsafe fn clgi() {
    // SAFETY: the caller guarantees SVM is on.
    unsafe { asm!("clgi", options(nomem, nostack)) };
}

/// `stgi`: lets host interrupts in again (taken at once if `RFLAGS.IF` is set).
///
/// # Safety
/// SVM is enabled on this CPU (`EFER.SVME`), and the host can take its interrupts here.
pub unsafe fn stgi() {
    // SAFETY: the caller guarantees SVM is on.
    unsafe { asm!("stgi", options(nostack)) };
}

/// `stgi; nop; cli`: the host takes the interrupts pending (`RFLAGS.IF` set), at the
/// latest at the `nop`'s boundary (an interrupt-enabling instruction may delay them by
/// one), then they are masked again.
///
/// # Safety
/// As [`stgi`].
pub unsafe fn stgi_take_interrupts_cli() {
    // SAFETY: the caller guarantees SVM is on and the host can take its interrupts.
    unsafe { asm!("stgi", "nop", "cli", options(nostack)) };
}

/// `sti`.
///
/// # Safety
/// The host can take its interrupts here (with GIF set), or GIF is clear and holds them.
pub unsafe fn sti() {
    // SAFETY: the caller guarantees the host can take interrupts.
    unsafe { asm!("sti", options(nostack)) };
}
