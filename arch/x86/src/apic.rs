//! The local APIC's interrupt command register (ICR) as a guest programs it through the
//! xAPIC page: how the x86 backends turn its writes into exits.
//!
//! A guest sends an IPI by writing the ICR's high half (the destination APIC id in bits
//! 24..32) and then its low half (vector, delivery mode, level, destination shorthand): the
//! low write sends. Backends leave the xAPIC page unmapped, so both writes reach the backend
//! as MMIO, and [`IcrDecoder`] decides what each means:
//!
//! | write | exit |
//! |---|---|
//! | a 4-byte write of ICR high | [`Nothing`](AxVCpuExitReason::Nothing) (remembered) |
//! | ICR low, INIT (mode 5), level assert, no shorthand | `Nothing`; the destination now waits for its SIPI |
//! | ICR low, start-up (mode 6), no shorthand, to a destination that got an INIT | [`CpuUp`](AxVCpuExitReason::CpuUp)`{target_cpu: APIC id, entry_point: vector << 12, arg: 0}`; later SIPIs without a new INIT are absorbed |
//! | ICR low, fixed (0), lowest priority (1) or NMI (4) | [`SendIPI`](AxVCpuExitReason::SendIPI)`{target_cpu: the destination field, target_cpu_aux: 1 in logical destination mode (ICR bit 11; `target_cpu` is then a logical destination the hypervisor matches against each local APIC's LDR/DFR), 0 in physical mode (`target_cpu` is an APIC id), send_to_self/send_to_all from the shorthand, vector}` (an NMI is vector 2: it ignores the ICR's vector field) |
//! | ICR low, any other mode (SMI, INIT de-assert, SIPI without INIT, ...) | `Nothing` (absorbed) |
//! | anything else on the page, or not 4 bytes wide | not the ICR: the backend reports its usual `MmioWrite` |
//!
//! `Nothing` is the core's "handled inside, enter again" (see
//! [`AxArchVCpu::run`](axvcpu::AxArchVCpu::run)), so a backend returns these exits as they
//! are.

use axvcpu::{AccessWidth, AxVCpuExitReason, GuestPhysAddr};

/// The guest-physical base of the local APIC's register page (the xAPIC default).
pub const APIC_BASE: u64 = 0xfee0_0000;
/// The guest-physical address of the ICR's low half (vector, mode, shorthand; writing it
/// sends).
pub const ICR_LOW: u64 = APIC_BASE + 0x300;
/// The guest-physical address of the ICR's high half (destination APIC id in bits 24..32).
pub const ICR_HIGH: u64 = APIC_BASE + 0x310;

/// ICR delivery modes (bits 8..11 of the low half).
mod mode {
    pub const FIXED: u32 = 0;
    pub const LOWEST_PRIORITY: u32 = 1;
    pub const NMI: u32 = 4;
    pub const INIT: u32 = 5;
    pub const STARTUP: u32 = 6;
}

/// The NMI's own vector, reported for an NMI IPI.
const NMI_VECTOR: u64 = 2;

/// One vCPU's view of its local APIC's ICR: the last high half written and which
/// destinations got an INIT and wait for their start-up IPI (the INIT-SIPI handshake).
/// Fixed size, no allocation: APIC ids are 8 bits in xAPIC mode.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IcrDecoder {
    high: u32,
    init_sent: [u64; 4],
}

impl IcrDecoder {
    /// A decoder with ICR high = 0 and no INIT sent.
    pub const fn new() -> Self {
        Self {
            high: 0,
            init_sent: [0; 4],
        }
    }

    /// Decodes a guest's MMIO write of `width` bytes of `data` at guest-physical `addr`:
    /// `None` if it is not a 4-byte write of [`ICR_LOW`] or [`ICR_HIGH`] (an ordinary
    /// `MmioWrite`), otherwise the exit it makes, [`Nothing`](AxVCpuExitReason::Nothing)
    /// when the backend absorbs it (see the module docs).
    pub fn mmio_write(
        &mut self,
        addr: u64,
        width: AccessWidth,
        data: u64,
    ) -> Option<AxVCpuExitReason> {
        if width != AccessWidth::Dword {
            return None;
        }
        match addr {
            ICR_HIGH => {
                self.write_high(data as u32);
                Some(AxVCpuExitReason::Nothing)
            }
            ICR_LOW => Some(self.write_low(data as u32)),
            _ => None,
        }
    }

    /// A write of the ICR's high half: remembers the destination.
    pub fn write_high(&mut self, value: u32) {
        self.high = value;
    }

    /// A write of the ICR's low half, which sends: the exit it makes
    /// ([`Nothing`](AxVCpuExitReason::Nothing) when absorbed).
    pub fn write_low(&mut self, value: u32) -> AxVCpuExitReason {
        let dest = self.high >> 24;
        let vector = value & 0xff;
        let mode = (value >> 8) & 7;
        let level_assert = value & (1 << 14) != 0;
        let logical = (value >> 11) & 1;
        let shorthand = (value >> 18) & 3;
        let (word, bit) = ((dest / 64) as usize, 1u64 << (dest % 64));
        let Some(waiting) = self.init_sent.get_mut(word) else {
            return AxVCpuExitReason::Nothing;
        };
        match mode {
            // The de-assert form is a legacy no-op.
            mode::INIT => {
                if level_assert && shorthand == 0 {
                    *waiting |= bit;
                }
                AxVCpuExitReason::Nothing
            }
            mode::STARTUP if shorthand == 0 && *waiting & bit != 0 => {
                *waiting &= !bit;
                AxVCpuExitReason::CpuUp {
                    target_cpu: u64::from(dest),
                    entry_point: GuestPhysAddr::from((vector as usize) << 12),
                    arg: 0,
                }
            }
            mode::FIXED | mode::LOWEST_PRIORITY | mode::NMI => AxVCpuExitReason::SendIPI {
                target_cpu: u64::from(dest),
                target_cpu_aux: u64::from(logical),
                send_to_all: shorthand >= 2,
                send_to_self: shorthand == 1 || shorthand == 2,
                vector: if mode == mode::NMI {
                    NMI_VECTOR
                } else {
                    u64::from(vector)
                },
            },
            _ => AxVCpuExitReason::Nothing,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use AxVCpuExitReason::{CpuUp, Nothing, SendIPI};

    const INIT_ASSERT: u32 = (5 << 8) | (1 << 14);
    const SIPI: u32 = 6 << 8;

    fn send(icr: &mut IcrDecoder, dest: u32, low: u32) -> AxVCpuExitReason {
        assert_eq!(
            icr.mmio_write(ICR_HIGH, AccessWidth::Dword, u64::from(dest) << 24),
            Some(Nothing)
        );
        icr.mmio_write(ICR_LOW, AccessWidth::Dword, u64::from(low))
            .expect("ICR low is the ICR")
    }

    fn cpu_up(dest: u64, vector: usize) -> AxVCpuExitReason {
        CpuUp {
            target_cpu: dest,
            entry_point: GuestPhysAddr::from(vector << 12),
            arg: 0,
        }
    }

    #[test]
    fn init_then_sipi_starts_the_destination_once() {
        let mut icr = IcrDecoder::new();
        assert_eq!(send(&mut icr, 1, INIT_ASSERT), Nothing);
        assert_eq!(send(&mut icr, 1, SIPI | 0x9a), cpu_up(1, 0x9a));
        assert_eq!(
            send(&mut icr, 1, SIPI | 0x9a),
            Nothing,
            "the second SIPI of the handshake is absorbed"
        );
        assert_eq!(send(&mut icr, 1, INIT_ASSERT), Nothing);
        assert_eq!(send(&mut icr, 1, SIPI | 0x10), cpu_up(1, 0x10));
    }

    #[test]
    fn inits_are_kept_per_destination_up_to_apic_id_255() {
        let mut icr = IcrDecoder::new();
        for dest in [0, 63, 64, 255] {
            assert_eq!(send(&mut icr, dest, INIT_ASSERT), Nothing);
        }
        assert_eq!(send(&mut icr, 7, SIPI | 1), Nothing, "no INIT for 7");
        for dest in [255, 64, 0, 63] {
            assert_eq!(send(&mut icr, dest, SIPI | 2), cpu_up(u64::from(dest), 2));
        }
    }

    #[test]
    fn sipi_without_init_init_deassert_and_shorthands_start_nothing() {
        let mut icr = IcrDecoder::new();
        assert_eq!(send(&mut icr, 2, SIPI | 1), Nothing);
        assert_eq!(send(&mut icr, 2, 5 << 8), Nothing, "INIT de-assert");
        assert_eq!(send(&mut icr, 2, SIPI | 1), Nothing);
        // INIT to all excluding self, then a SIPI with the same shorthand.
        assert_eq!(send(&mut icr, 2, INIT_ASSERT | (3 << 18)), Nothing);
        assert_eq!(send(&mut icr, 2, SIPI | (3 << 18) | 1), Nothing);
        assert_eq!(send(&mut icr, 2, SIPI | 1), Nothing);
    }

    #[test]
    fn fixed_lowest_priority_and_nmi_ipis_go_to_the_hypervisor() {
        let mut icr = IcrDecoder::new();
        let ipi = |target, vector, to_self, to_all| SendIPI {
            target_cpu: target,
            target_cpu_aux: 0,
            send_to_all: to_all,
            send_to_self: to_self,
            vector,
        };
        assert_eq!(send(&mut icr, 3, 0x41), ipi(3, 0x41, false, false));
        assert_eq!(
            send(&mut icr, 3, (1 << 8) | 0x42),
            ipi(3, 0x42, false, false)
        );
        assert_eq!(send(&mut icr, 3, (4 << 8) | 0x43), ipi(3, 2, false, false));
        assert_eq!(
            send(&mut icr, 0, (1 << 18) | 0x44),
            ipi(0, 0x44, true, false)
        );
        assert_eq!(
            send(&mut icr, 0, (2 << 18) | 0x45),
            ipi(0, 0x45, true, true)
        );
        assert_eq!(
            send(&mut icr, 0, (3 << 18) | 0x46),
            ipi(0, 0x46, false, true)
        );
        // Logical destination mode (bit 11): the destination is a logical one.
        assert_eq!(
            send(&mut icr, 2, (1 << 11) | 0x48),
            SendIPI {
                target_cpu: 2,
                target_cpu_aux: 1,
                send_to_all: false,
                send_to_self: false,
                vector: 0x48
            }
        );
        // SMI (2), reserved (3, 7) are absorbed.
        for m in [2, 3, 7] {
            assert_eq!(send(&mut icr, 3, (m << 8) | 0x47), Nothing);
        }
    }

    #[test]
    fn other_registers_and_widths_are_not_the_icr() {
        let mut icr = IcrDecoder::new();
        assert_eq!(
            icr.mmio_write(APIC_BASE + 0xb0, AccessWidth::Dword, 0),
            None
        );
        assert_eq!(icr.mmio_write(ICR_LOW, AccessWidth::Qword, 0x41), None);
        assert_eq!(icr.mmio_write(ICR_HIGH, AccessWidth::Byte, 0), None);
        assert_eq!(
            icr.mmio_write(ICR_LOW + 0x1000, AccessWidth::Dword, 0),
            None
        );
        assert_eq!(icr, IcrDecoder::new(), "nothing was remembered");
    }
}
