//! The SBI calls a VS-mode guest makes with `ecall`, classified from its registers.
//!
//! Pure: the vCPU turns a [`SbiCall`] into an exit or answers it itself.

use axvcpu::RISCV_HYPERCALL_EXT;

/// SBI extension ids.
pub mod eid {
    /// Legacy `sbi_set_timer`.
    pub const LEGACY_SET_TIMER: u64 = 0x00;
    /// Legacy `sbi_console_putchar`.
    pub const LEGACY_PUTCHAR: u64 = 0x01;
    /// Legacy `sbi_console_getchar`.
    pub const LEGACY_GETCHAR: u64 = 0x02;
    /// Legacy `sbi_shutdown`.
    pub const LEGACY_SHUTDOWN: u64 = 0x08;
    /// Base extension.
    pub const BASE: u64 = 0x10;
    /// Timer extension ("TIME").
    pub const TIME: u64 = 0x5449_4D45;
    /// IPI extension ("sPI").
    pub const IPI: u64 = 0x0073_5049;
    /// Hart state management ("HSM").
    pub const HSM: u64 = 0x0048_534D;
    /// System reset ("SRST").
    pub const SRST: u64 = 0x5352_5354;
    /// Remote fences ("RFNC").
    pub const RFENCE: u64 = 0x5246_4E43;
    /// Debug console ("DBCN").
    pub const DBCN: u64 = 0x4442_434E;
}

/// HSM `hart_suspend` types the backend offers.
pub mod suspend {
    /// Default retentive suspend: the call returns once an interrupt is pending (a `wfi`).
    pub const RETENTIVE: u32 = 0x0000_0000;
    /// Default non-retentive suspend: the hart resumes at `resume_addr` with `a0` = its
    /// hart id and `a1` = `opaque`, translation off and interrupts disabled.
    pub const NON_RETENTIVE: u32 = 0x8000_0000;
}

/// SBI error codes (returned in `a0`).
pub mod err {
    /// Success.
    pub const SUCCESS: i64 = 0;
    /// The call is not supported.
    pub const NOT_SUPPORTED: i64 = -2;
    /// A parameter is invalid.
    pub const INVALID_PARAM: i64 = -3;
    /// The hart is already started (HSM `hart_start`).
    pub const ALREADY_AVAILABLE: i64 = -6;
}

/// The `nr` of the [`Hypercall`](axvcpu::AxVCpuExitReason::Hypercall) exit that stands for
/// HSM `hart_get_status(args[0])`, which only the hypervisor can answer: with
/// `set_return_value(status)` (0 started, 1 stopped, 2 start pending, 3 stop pending,
/// 4 suspended), or `a0` = [`err::INVALID_PARAM`] for a hart the guest does not have. Not a
/// function id of the hypercall extension (those fit in 32 bits).
pub const HART_STATUS_NR: u64 = (eid::HSM << 32) | 2;

/// The SBI specification version the backend reports (2.0).
pub const SPEC_VERSION: u64 = 2 << 24;
/// The implementation id the backend reports ("axvcpu", in the experimental range).
pub const IMPL_ID: u64 = 0x4158;

/// A guest `ecall`, decoded from `a0..a7`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SbiCall {
    /// The project's hypercall extension: `nr` = `a6`, `args` = `a0..a5`.
    Hypercall {
        /// The number.
        nr: u64,
        /// The arguments.
        args: [u64; 6],
    },
    /// HSM `hart_start`.
    HartStart {
        /// The hart to start.
        hartid: u64,
        /// Its start address.
        start_addr: u64,
        /// Its `a1`.
        opaque: u64,
    },
    /// HSM `hart_stop`.
    HartStop,
    /// HSM `hart_get_status(hartid)`: only the hypervisor knows the other harts.
    HartStatus {
        /// The hart asked about.
        hartid: u64,
    },
    /// HSM `hart_suspend` of a type the backend offers ([`suspend`]).
    HartSuspend {
        /// [`suspend::RETENTIVE`] or [`suspend::NON_RETENTIVE`].
        suspend_type: u32,
        /// Where a non-retentive suspend resumes.
        resume_addr: u64,
        /// Its `a1` then.
        opaque: u64,
    },
    /// RFENCE `remote_fence_i`, `remote_sfence_vma` or `remote_sfence_vma_asid` (their
    /// address ranges and ASIDs are not looked at: the targets flush everything).
    RemoteFence {
        /// The hart mask.
        mask: u64,
        /// The hart mask base (`u64::MAX`: all harts).
        base: u64,
    },
    /// DBCN `console_write(num_bytes, base_addr_lo, base_addr_hi)`.
    ConsoleWrite {
        /// Bytes to write.
        len: u64,
        /// Their guest-physical address.
        addr: u64,
    },
    /// DBCN `console_read`: there is no input; answered with 0 bytes read.
    ConsoleRead,
    /// SRST `system_reset` with a defined or vendor reset type and reason, or legacy
    /// shutdown.
    SystemReset {
        /// Reset type (0 shutdown, 1 cold reboot, 2 warm reboot, `0xF000_0000..`: vendor).
        reset_type: u64,
        /// Reason.
        reason: u64,
    },
    /// Legacy console putchar, or DBCN `console_write_byte`.
    PutChar(u8),
    /// Legacy console getchar.
    GetChar,
    /// Set the timer (legacy or TIME extension).
    SetTimer {
        /// The absolute `time` value.
        stime: u64,
        /// Whether it came through the legacy extension (its return convention differs).
        legacy: bool,
    },
    /// IPI `send_ipi` (the legacy `sbi_send_ipi`, which passes a pointer into guest memory,
    /// is not offered: it is `Unsupported`).
    SendIpi {
        /// The hart mask.
        mask: u64,
        /// The hart mask base (`u64::MAX`: all harts).
        base: u64,
    },
    /// A base extension function (`fid`), with its argument.
    Base {
        /// The function id.
        fid: u64,
        /// `a0`.
        arg: u64,
    },
    /// A supported function called with a parameter the specification reserves (an SRST
    /// reset type or reason): answered with `SBI_ERR_INVALID_PARAM`.
    InvalidParam {
        /// `a7`.
        eid: u64,
        /// `a6`.
        fid: u64,
    },
    /// Anything else: answered with `SBI_ERR_NOT_SUPPORTED`.
    Unsupported {
        /// `a7`.
        eid: u64,
        /// `a6`.
        fid: u64,
    },
}

/// Classifies the call the guest made with registers `a` = `a0..a7`.
pub fn classify(a: &[u64; 8]) -> SbiCall {
    let (eid, fid) = (a[7], a[6]);
    match (eid, fid) {
        (RISCV_HYPERCALL_EXT, nr) => SbiCall::Hypercall {
            nr,
            args: [a[0], a[1], a[2], a[3], a[4], a[5]],
        },
        (eid::HSM, 0) => SbiCall::HartStart {
            hartid: a[0],
            start_addr: a[1],
            opaque: a[2],
        },
        (eid::HSM, 1) => SbiCall::HartStop,
        (eid::HSM, 2) => SbiCall::HartStatus { hartid: a[0] },
        (eid::HSM, 3) => {
            let suspend_type = a[0] as u32;
            match suspend_type {
                suspend::RETENTIVE | suspend::NON_RETENTIVE => SbiCall::HartSuspend {
                    suspend_type,
                    resume_addr: a[1],
                    opaque: a[2],
                },
                // Platform-specific types: none offered.
                0x1000_0000..=0x7fff_ffff | 0x9000_0000..=0xffff_ffff => {
                    SbiCall::Unsupported { eid, fid }
                }
                _ => SbiCall::InvalidParam { eid, fid },
            }
        }
        // The hypervisor-extension fences (3..=6) are for guests that run guests.
        (eid::RFENCE, 0..=2) => SbiCall::RemoteFence {
            mask: a[0],
            base: a[1],
        },
        // On RV64 an address fits `base_addr_lo`; a non-zero high half is out of reach.
        (eid::DBCN, 0) if a[2] == 0 => SbiCall::ConsoleWrite {
            len: a[0],
            addr: a[1],
        },
        (eid::DBCN, 0) => SbiCall::InvalidParam { eid, fid },
        (eid::DBCN, 1) => SbiCall::ConsoleRead,
        (eid::DBCN, 2) => SbiCall::PutChar(a[0] as u8),
        (eid::SRST, 0) => {
            // Both parameters are `uint32_t` in the specification: the upper half is ignored.
            let (reset_type, reason) = (a[0] as u32, a[1] as u32);
            let vendor = 0xf000_0000..=u32::MAX;
            if (reset_type <= 2 || vendor.contains(&reset_type))
                && (reason <= 1 || vendor.contains(&reason))
            {
                SbiCall::SystemReset {
                    reset_type: reset_type as u64,
                    reason: reason as u64,
                }
            } else {
                SbiCall::InvalidParam {
                    eid: eid::SRST,
                    fid,
                }
            }
        }
        (eid::LEGACY_SHUTDOWN, _) => SbiCall::SystemReset {
            reset_type: 0,
            reason: 0,
        },
        (eid::LEGACY_PUTCHAR, _) => SbiCall::PutChar(a[0] as u8),
        (eid::LEGACY_GETCHAR, _) => SbiCall::GetChar,
        (eid::LEGACY_SET_TIMER, _) => SbiCall::SetTimer {
            stime: a[0],
            legacy: true,
        },
        (eid::TIME, 0) => SbiCall::SetTimer {
            stime: a[0],
            legacy: false,
        },
        (eid::IPI, 0) => SbiCall::SendIpi {
            mask: a[0],
            base: a[1],
        },
        (eid::BASE, fid) => SbiCall::Base { fid, arg: a[0] },
        (eid, fid) => SbiCall::Unsupported { eid, fid },
    }
}

/// Whether probing extension `eid` through the base extension reports it available.
pub fn probe(eid: u64) -> bool {
    matches!(
        eid,
        eid::LEGACY_SET_TIMER
            | eid::LEGACY_PUTCHAR
            | eid::LEGACY_GETCHAR
            | eid::LEGACY_SHUTDOWN
            | eid::BASE
            | eid::TIME
            | eid::IPI
            | eid::HSM
            | eid::SRST
            | eid::RFENCE
            | eid::DBCN
            | RISCV_HYPERCALL_EXT
    )
}

/// The `(a0, a1)` answer to base function `fid` with argument `arg`.
pub fn base(fid: u64, arg: u64) -> (i64, u64) {
    match fid {
        0 => (err::SUCCESS, SPEC_VERSION),
        1 => (err::SUCCESS, IMPL_ID),
        2 => (err::SUCCESS, 1),
        3 => (err::SUCCESS, probe(arg) as u64),
        4..=6 => (err::SUCCESS, 0), // mvendorid, marchid, mimpid
        _ => (err::NOT_SUPPORTED, 0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn regs(a7: u64, a6: u64, a0: u64, a1: u64, a2: u64) -> [u64; 8] {
        [a0, a1, a2, 4, 5, 6, a6, a7]
    }

    #[test]
    fn classifies_the_calls_the_backend_handles() {
        assert_eq!(
            classify(&regs(RISCV_HYPERCALL_EXT, 0x42, 1, 2, 3)),
            SbiCall::Hypercall {
                nr: 0x42,
                args: [1, 2, 3, 4, 5, 6]
            }
        );
        assert_eq!(
            classify(&regs(eid::HSM, 0, 1, 0x8000_0100, 7)),
            SbiCall::HartStart {
                hartid: 1,
                start_addr: 0x8000_0100,
                opaque: 7
            }
        );
        assert_eq!(classify(&regs(eid::HSM, 1, 0, 0, 0)), SbiCall::HartStop);
        assert_eq!(
            classify(&regs(eid::SRST, 0, 0, 0, 0)),
            SbiCall::SystemReset {
                reset_type: 0,
                reason: 0
            }
        );
        assert_eq!(
            classify(&regs(eid::SRST, 0, 1, 1, 0)),
            SbiCall::SystemReset {
                reset_type: 1,
                reason: 1
            }
        );
        // Reserved reset types and reasons are refused, not taken as a power-off.
        for (reset_type, reason) in [(3, 0), (0xefff_ffff, 0), (0, 2), (0, 0xefff_ffff)] {
            assert_eq!(
                classify(&regs(eid::SRST, 0, reset_type, reason, 0)),
                SbiCall::InvalidParam {
                    eid: eid::SRST,
                    fid: 0
                },
                "reset_type {reset_type:#x} reason {reason:#x}"
            );
        }
        assert_eq!(
            classify(&regs(eid::SRST, 0, 0xf000_0000, 0xffff_ffff, 0)),
            SbiCall::SystemReset {
                reset_type: 0xf000_0000,
                reason: 0xffff_ffff
            }
        );
        // The upper halves of the uint32_t parameters are ignored.
        assert!(matches!(
            classify(&regs(eid::SRST, 0, 1 << 32, 0, 0)),
            SbiCall::SystemReset { reset_type: 0, .. }
        ));
        assert_eq!(
            classify(&regs(1, 0, b'x' as u64, 0, 0)),
            SbiCall::PutChar(b'x')
        );
        assert_eq!(
            classify(&regs(eid::HSM, 9, 0, 0, 0)),
            SbiCall::Unsupported {
                eid: eid::HSM,
                fid: 9
            }
        );
        assert_eq!(
            classify(&regs(0x1234_5678, 0, 0, 0, 0)),
            SbiCall::Unsupported {
                eid: 0x1234_5678,
                fid: 0
            }
        );
    }

    #[test]
    fn classifies_what_linux_calls() {
        assert_eq!(
            classify(&regs(eid::HSM, 2, 1, 0, 0)),
            SbiCall::HartStatus { hartid: 1 }
        );
        assert_eq!(
            classify(&regs(eid::HSM, 3, 0x8000_0000, 0x8020_0000, 9)),
            SbiCall::HartSuspend {
                suspend_type: suspend::NON_RETENTIVE,
                resume_addr: 0x8020_0000,
                opaque: 9
            }
        );
        assert_eq!(
            classify(&regs(eid::HSM, 3, 1, 0, 0)),
            SbiCall::InvalidParam {
                eid: eid::HSM,
                fid: 3
            }
        );
        assert_eq!(
            classify(&regs(eid::HSM, 3, 0x1000_0000, 0, 0)),
            SbiCall::Unsupported {
                eid: eid::HSM,
                fid: 3
            }
        );
        for fid in 0..=2 {
            assert_eq!(
                classify(&regs(eid::RFENCE, fid, 3, u64::MAX, 0)),
                SbiCall::RemoteFence {
                    mask: 3,
                    base: u64::MAX
                }
            );
        }
        assert_eq!(
            classify(&regs(eid::RFENCE, 3, 3, 0, 0)),
            SbiCall::Unsupported {
                eid: eid::RFENCE,
                fid: 3
            }
        );
        assert_eq!(
            classify(&regs(eid::DBCN, 0, 5, 0x8000_1000, 0)),
            SbiCall::ConsoleWrite {
                len: 5,
                addr: 0x8000_1000
            }
        );
        assert_eq!(
            classify(&regs(eid::DBCN, 0, 5, 0, 1)),
            SbiCall::InvalidParam {
                eid: eid::DBCN,
                fid: 0
            }
        );
        assert_eq!(
            classify(&regs(eid::DBCN, 2, b'z' as u64, 0, 0)),
            SbiCall::PutChar(b'z')
        );
    }

    #[test]
    fn base_extension_answers() {
        assert_eq!(base(0, 0), (0, SPEC_VERSION));
        assert_eq!(base(3, eid::HSM), (0, 1));
        assert_eq!(base(3, RISCV_HYPERCALL_EXT), (0, 1));
        assert_eq!(base(3, eid::DBCN), (0, 1));
        assert_eq!(base(3, eid::RFENCE), (0, 1));
        assert_eq!(base(3, 0x0050_4d55), (0, 0)); // PMU: not offered
        assert_eq!(base(99, 0).0, err::NOT_SUPPORTED);
    }
}
