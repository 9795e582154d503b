//! The host CPU's privileged registers and instructions the backend uses: the SVM MSRs
//! (`EFER`, `VM_CR`, `VM_HSAVE_PA`), CPUID's SVM features, the global interrupt flag, the
//! local APIC (fixed IPIs, the IRR).

use core::arch::asm;
use core::arch::x86_64::__cpuid;

use axvcpu::{AxVCpuHal, HostPhysAddr};

/// `IA32_EFER`.
pub const MSR_EFER: u32 = 0xc000_0080;
/// `VM_CR`.
pub const MSR_VM_CR: u32 = 0xc001_0114;
/// `VM_HSAVE_PA`.
pub const MSR_VM_HSAVE_PA: u32 = 0xc001_0117;
/// `IA32_APIC_BASE`.
pub const MSR_APIC_BASE: u32 = 0x1b;
/// `EFER.NXE`.
pub const EFER_NXE: u64 = 1 << 11;
/// `EFER.SVME`.
pub const EFER_SVME: u64 = 1 << 12;
/// `VM_CR.SVMDIS`.
pub const VM_CR_SVMDIS: u64 = 1 << 4;

/// Reads MSR `msr`.
///
/// # Safety
/// `msr` must exist on this CPU (or the read #GPs).
pub unsafe fn rdmsr(msr: u32) -> u64 {
    let (lo, hi): (u32, u32);
    // SAFETY: the caller guarantees the MSR exists.
    unsafe { asm!("rdmsr", in("ecx") msr, out("eax") lo, out("edx") hi, options(nomem, nostack)) };
    (u64::from(hi) << 32) | u64::from(lo)
}

/// Writes MSR `msr`.
///
/// # Safety
/// `msr` must exist and `value` be valid for it; the write must not break the host.
unsafe fn wrmsr(msr: u32, value: u64) {
    // SAFETY: the caller guarantees the write is valid and harmless to the host.
    unsafe {
        asm!("wrmsr", in("ecx") msr, in("eax") value as u32, in("edx") (value >> 32) as u32,
            options(nostack))
    };
}

/// `IA32_EFER`.
pub fn efer() -> u64 {
    // SAFETY: EFER exists on every x86-64 CPU; reading it has no side effect.
    unsafe { rdmsr(MSR_EFER) }
}

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

/// CPUID leaf `leaf` (subleaf 0): `(eax, ebx, ecx, edx)`.
pub fn cpuid(leaf: u32) -> (u32, u32, u32, u32) {
    // SAFETY: CPUID exists on every x86-64 CPU and has no side effects (the intrinsic is
    // safe on newer compilers, unsafe on the workspace's minimum one).
    #[allow(unused_unsafe)]
    let r = unsafe { __cpuid(leaf) };
    (r.eax, r.ebx, r.ecx, r.edx)
}

/// Whether the CPU has SVM (`CPUID 8000_0001h ECX[2]`) with nested paging
/// (`CPUID 8000_000Ah EDX[0]`); the number of ASIDs when it does.
pub fn svm_with_np() -> Option<u32> {
    let (max_ext, ..) = cpuid(0x8000_0000);
    if max_ext < 0x8000_000a {
        return None;
    }
    let (_, _, ecx, _) = cpuid(0x8000_0001);
    if ecx & (1 << 2) == 0 {
        return None;
    }
    let (_, nasid, _, edx) = cpuid(0x8000_000a);
    (edx & 1 != 0).then_some(nasid)
}

/// Sends a fixed IPI with `vector` to the CPU whose local APIC id is `apic_id`, through this
/// CPU's local APIC (x2APIC MSRs when enabled, else the xAPIC page reached through the HAL).
pub fn send_ipi<H: AxVCpuHal>(apic_id: u32, vector: u8) {
    // Fixed delivery, physical destination, level assert.
    let low = u32::from(vector) | (1 << 14);
    // SAFETY: IA32_APIC_BASE exists on every CPU with SVM.
    let base = unsafe { rdmsr(MSR_APIC_BASE) };
    if base & (1 << 10) != 0 {
        // SAFETY: x2APIC ICR; sending a fixed IPI has no other effect.
        unsafe { wrmsr(0x830, (u64::from(apic_id) << 32) | u64::from(low)) };
        return;
    }
    let page = H::phys_to_virt(HostPhysAddr::from((base & 0x000f_ffff_ffff_f000) as usize));
    let icr_low = (page.as_usize() + 0x300) as *mut u32;
    let icr_high = (page.as_usize() + 0x310) as *mut u32;
    // SAFETY: the local APIC's register page as the HAL maps it; the host does not use
    // the ICR from interrupt context, so these two writes are not interleaved with another
    // sender on this CPU.
    unsafe {
        icr_high.write_volatile(apic_id << 24);
        icr_low.write_volatile(low);
    }
}

/// The interrupt request register of this CPU's local APIC: one bit per vector, pending
/// and not yet accepted (x2APIC MSRs when enabled, else the xAPIC page through the HAL).
pub fn apic_irr<H: AxVCpuHal>() -> [u32; 8] {
    let mut irr = [0u32; 8];
    // SAFETY: IA32_APIC_BASE exists on every CPU with SVM.
    let base = unsafe { rdmsr(MSR_APIC_BASE) };
    if base & (1 << 11) == 0 {
        // The local APIC is disabled: nothing is pending there.
        return irr;
    }
    if base & (1 << 10) != 0 {
        for (i, word) in irr.iter_mut().enumerate() {
            // SAFETY: x2APIC IRR registers 0x820..0x828, readable in x2APIC mode.
            *word = unsafe { rdmsr(0x820 + i as u32) } as u32;
        }
        return irr;
    }
    let page = H::phys_to_virt(HostPhysAddr::from((base & 0x000f_ffff_ffff_f000) as usize));
    for (i, word) in irr.iter_mut().enumerate() {
        let reg = (page.as_usize() + 0x200 + 0x10 * i) as *const u32;
        // SAFETY: the local APIC's IRR registers as the HAL maps the APIC page; reading
        // them has no side effect.
        *word = unsafe { reg.read_volatile() };
    }
    irr
}

/// The highest vector set in `irr`.
pub fn highest_vector(irr: &[u32; 8]) -> Option<u8> {
    (0..8)
        .rev()
        .find(|&i| irr[i] != 0)
        .map(|i| (i * 32 + 31 - irr[i].leading_zeros() as usize) as u8)
}

/// Whether `vector` is set in `irr`.
pub fn has_vector(irr: &[u32; 8], vector: u8) -> bool {
    irr[usize::from(vector / 32)] & (1 << (vector % 32)) != 0
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

/// Saves `RFLAGS` and disables interrupts.
pub fn save_flags_cli() -> u64 {
    let flags: u64;
    // SAFETY: reads RFLAGS and clears IF, which the caller restores.
    unsafe { asm!("pushfq", "pop {}", "cli", out(reg) flags, options(nomem)) };
    flags
}

/// Restores `RFLAGS.IF` from `flags` (saved by [`save_flags_cli`]).
pub fn restore_flags(flags: u64) {
    if flags & (1 << 9) != 0 {
        // SAFETY: interrupts were enabled before `save_flags_cli`.
        unsafe { sti() };
    }
}
