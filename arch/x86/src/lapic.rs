//! The host's own local APIC, as every bare-metal x86 backend uses it: the kick IPI, the
//! interrupt request register (which host interrupt made the guest exit), and the vectors
//! a guest can be given.
//!
//! The xAPIC page is reached through the HAL's `phys_to_virt`; in x2APIC mode the MSRs are
//! used instead. Compiled for `x86_64` only, but for the pure helpers.

use axvcpu::{VCpuError, VCpuResult};

/// The vector of the kick IPI of every x86 backend. The host must give it an IDT handler
/// that sends EOI to its local APIC.
pub const KICK_VECTOR: u8 = 0xf2;

/// Refuses what x86 cannot inject as an external interrupt: vectors 0..32 are exceptions.
pub fn check_injectable_vector(vector: usize) -> VCpuResult {
    if (32..256).contains(&vector) {
        Ok(())
    } else {
        Err(
            VCpuError::invalid_input("x86 injects external interrupt vectors 32..=255")
                .with_value(vector as u64),
        )
    }
}

/// The highest vector set in an IRR image.
pub fn highest_vector(irr: &[u32; 8]) -> Option<u8> {
    (0..8)
        .rev()
        .find(|&i| irr[i] != 0)
        .map(|i| (i * 32 + 31 - irr[i].leading_zeros() as usize) as u8)
}

/// Whether `vector` is set in an IRR image.
pub fn has_vector(irr: &[u32; 8], vector: u8) -> bool {
    irr[usize::from(vector / 32)] & (1 << (vector % 32)) != 0
}

#[cfg(target_arch = "x86_64")]
pub use host::{irr, send_fixed_ipi, LapicKick};

#[cfg(target_arch = "x86_64")]
mod host {
    use core::arch::asm;
    use core::marker::PhantomData;

    use axvcpu::{AxVCpuHal, HostPhysAddr, KickIpi};

    use super::KICK_VECTOR;

    const MSR_APIC_BASE: u32 = 0x1b;
    const APIC_BASE_X2APIC: u64 = 1 << 10;
    const APIC_BASE_ENABLED: u64 = 1 << 11;
    const X2APIC_ICR: u32 = 0x830;
    const X2APIC_IRR0: u32 = 0x820;

    fn apic_base() -> u64 {
        let (lo, hi): (u32, u32);
        // SAFETY: IA32_APIC_BASE exists on every x86-64 CPU with a local APIC, which every
        // CPU with SVM or VMX has; reading it has no side effect.
        unsafe {
            asm!("rdmsr", in("ecx") MSR_APIC_BASE, out("eax") lo, out("edx") hi,
                options(nomem, nostack))
        };
        (u64::from(hi) << 32) | u64::from(lo)
    }

    fn xapic_reg<H: AxVCpuHal>(base: u64, offset: usize) -> usize {
        H::phys_to_virt(HostPhysAddr::from((base & 0x000f_ffff_ffff_f000) as usize)).as_usize()
            + offset
    }

    /// Sends a fixed IPI with `vector` to the CPU whose local APIC id is `apic_id`, through
    /// this CPU's local APIC.
    pub fn send_fixed_ipi<H: AxVCpuHal>(apic_id: u32, vector: u8) {
        // Fixed delivery, physical destination, level assert.
        let low = u32::from(vector) | (1 << 14);
        let base = apic_base();
        if base & APIC_BASE_X2APIC != 0 {
            let value = (u64::from(apic_id) << 32) | u64::from(low);
            // SAFETY: the x2APIC ICR, writable in x2APIC mode; sending a fixed IPI has no
            // other effect.
            unsafe {
                asm!("wrmsr", in("ecx") X2APIC_ICR, in("eax") value as u32,
                    in("edx") (value >> 32) as u32, options(nostack))
            };
            return;
        }
        let icr_low = xapic_reg::<H>(base, 0x300) as *mut u32;
        let icr_high = xapic_reg::<H>(base, 0x310) as *mut u32;
        // SAFETY: the local APIC's register page as the HAL maps it; the host does not use
        // the ICR from interrupt context, so these two writes are not interleaved with
        // another sender on this CPU.
        unsafe {
            icr_high.write_volatile(apic_id << 24);
            icr_low.write_volatile(low);
        }
    }

    /// The interrupt request register of this CPU's local APIC: one bit per vector pending
    /// and not yet accepted.
    pub fn irr<H: AxVCpuHal>() -> [u32; 8] {
        let mut irr = [0u32; 8];
        let base = apic_base();
        if base & APIC_BASE_ENABLED == 0 {
            // The local APIC is disabled: nothing is pending there.
            return irr;
        }
        if base & APIC_BASE_X2APIC != 0 {
            for (i, word) in irr.iter_mut().enumerate() {
                let (lo, _hi): (u32, u32);
                // SAFETY: x2APIC IRR registers 0x820..0x828, readable in x2APIC mode,
                // without side effects.
                unsafe {
                    asm!("rdmsr", in("ecx") X2APIC_IRR0 + i as u32, out("eax") lo,
                        out("edx") _hi, options(nomem, nostack))
                };
                *word = lo;
            }
            return irr;
        }
        for (i, word) in irr.iter_mut().enumerate() {
            let reg = xapic_reg::<H>(base, 0x200 + 0x10 * i) as *const u32;
            // SAFETY: the local APIC's IRR registers as the HAL maps the APIC page; reading
            // them has no side effect.
            *word = unsafe { reg.read_volatile() };
        }
        irr
    }

    /// The kick's interrupt of every bare-metal x86 backend: a fixed IPI with
    /// [`KICK_VECTOR`] to the bound CPU's local APIC (reached through `H`). The kicker is
    /// [`IpiKicker<LapicKick<H>>`](axvcpu::IpiKicker).
    pub struct LapicKick<H: AxVCpuHal>(PhantomData<fn() -> H>);

    impl<H: AxVCpuHal> core::fmt::Debug for LapicKick<H> {
        fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
            f.write_str("LapicKick")
        }
    }

    impl<H: AxVCpuHal> KickIpi for LapicKick<H> {
        fn send_kick(cpu: usize) {
            send_fixed_ipi::<H>(cpu as u32, KICK_VECTOR);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn irr_images_name_their_highest_and_each_vector() {
        let mut irr = [0u32; 8];
        assert_eq!(highest_vector(&irr), None);
        irr[1] = 1 << 2; // vector 34
        irr[7] = 1 << 18; // vector 0xf2
        assert_eq!(highest_vector(&irr), Some(KICK_VECTOR));
        assert!(has_vector(&irr, 34) && has_vector(&irr, KICK_VECTOR));
        assert!(!has_vector(&irr, 35));
    }

    #[test]
    fn only_external_interrupt_vectors_are_injectable() {
        assert!(check_injectable_vector(31).is_err());
        assert!(check_injectable_vector(32).is_ok());
        assert!(check_injectable_vector(255).is_ok());
        assert!(check_injectable_vector(256).is_err());
    }
}
