//! The host x86-64 CPU's instructions every bare-metal x86 backend uses alike: MSRs, CPUID,
//! `RFLAGS.IF`, and FXSAVE/FXRSTOR of a guest's x87/SSE state. (What is SVM's or VMX's
//! alone stays in that backend's `hw.rs`.) Only on x86-64 targets.

use core::arch::asm;
use core::arch::x86_64::__cpuid_count;

/// `IA32_EFER`.
pub const MSR_EFER: u32 = 0xc000_0080;
/// `RFLAGS.IF`.
const RFLAGS_IF: u64 = 1 << 9;

/// Reads MSR `msr`.
///
/// # Safety
/// `msr` must exist on this CPU (or the read #GPs).
#[inline]
pub unsafe fn rdmsr(msr: u32) -> u64 {
    let (lo, hi): (u32, u32);
    // SAFETY: the caller guarantees the MSR exists.
    unsafe { asm!("rdmsr", in("ecx") msr, out("eax") lo, out("edx") hi, options(nomem, nostack)) };
    (u64::from(hi) << 32) | u64::from(lo)
}

/// Writes MSR `msr`.
///
/// # Safety
/// `msr` must exist and `value` be valid for it; the write must not break the host (or
/// memory safety: EFER, the SVM host save area and the like are the caller's to get right).
pub unsafe fn wrmsr(msr: u32, value: u64) {
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

/// CPUID leaf `leaf`, subleaf `sub`: `(eax, ebx, ecx, edx)`.
pub fn cpuid(leaf: u32, sub: u32) -> (u32, u32, u32, u32) {
    // SAFETY: CPUID exists on every x86-64 CPU and has no side effects (the intrinsic is
    // safe on newer compilers, unsafe on the workspace's minimum one).
    #[allow(unused_unsafe)]
    let r = unsafe { __cpuid_count(leaf, sub) };
    (r.eax, r.ebx, r.ecx, r.edx)
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
    if flags & RFLAGS_IF != 0 {
        // SAFETY: interrupts were enabled before `save_flags_cli`.
        unsafe { asm!("sti", options(nomem, nostack)) };
    }
}

/// The legacy region `fxsave` writes: x87, MXCSR, XMM0..15.
#[repr(C, align(16))]
#[derive(Clone)]
pub struct FxArea(pub [u8; 512]);

impl FxArea {
    /// The state after `fninit` and reset: FCW 0x037f (every exception masked), MXCSR
    /// 0x1f80, the x87 stack empty, the registers zero.
    pub fn initial() -> Self {
        let mut a = [0u8; 512];
        a[0..2].copy_from_slice(&0x037fu16.to_le_bytes());
        a[24..28].copy_from_slice(&0x1f80u32.to_le_bytes());
        Self(a)
    }
}

impl core::fmt::Debug for FxArea {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("FxArea")
    }
}

/// `fxsave`: this CPU's x87/SSE state into `area`.
///
/// Only on bare-metal hosts (`target_os = "none"`), which use no x87/SSE registers of
/// their own (the state is the guest's), with `CR4.OSFXSR` set so XMM registers are saved.
#[cfg(target_os = "none")]
pub fn fxsave(area: &mut FxArea) {
    // SAFETY: `area` is 512 writable bytes, 16-byte aligned; the host keeps no state of
    // its own in these registers.
    unsafe { asm!("fxsave64 [{}]", in(reg) area.0.as_mut_ptr(), options(nostack)) };
}

/// `fxrstor`: this CPU's x87/SSE state from `area` (as [`fxsave`] or
/// [`FxArea::initial`] left it).
#[cfg(target_os = "none")]
pub fn fxrstor(area: &FxArea) {
    // SAFETY: `area` is 512 readable bytes, 16-byte aligned, holding a valid state (MXCSR
    // reserved bits clear: the guest cannot set them, `fxsave` stores what the CPU had);
    // the host keeps no state of its own in these registers.
    unsafe { asm!("fxrstor64 [{}]", in(reg) area.0.as_ptr(), options(nostack, readonly)) };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpuid_leaf_0_names_a_vendor_and_leaf_1_is_within_it() {
        let (max, b, c, d) = cpuid(0, 0);
        assert!(max >= 1, "CPUID reports no leaf 1");
        assert!([b, c, d].iter().any(|&r| r != 0), "no vendor string");
    }
}
