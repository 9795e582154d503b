//! The VMCS (Intel SDM vol. 3C, appendix B): the encodings of the fields the backend uses,
//! the exit reasons it decodes, and (x86_64) how it reads and writes the current VMCS.
//!
//! An encoding says a field's width (bits 13..15: 16-bit, 64-bit, 32-bit, natural), its type
//! (bits 10..12: control, read-only exit information, guest state, host state) and its
//! index (bits 1..10).

/// The VMX-preemption timer's start value at each entry: TSC ticks shifted right by
/// `IA32_VMX_MISC[4:0]` (about 1 ms on a 3 GHz CPU with rate 5; 10 ms in Bochs at 10 ticks
/// per us with rate 0).
pub const PREEMPTION_TICKS: u64 = 100_000;

/// Control fields.
pub mod ctrl {
    /// Virtual-processor identifier (16 bits).
    pub const VPID: u32 = 0x0000;
    /// Address of the MSR bitmaps (64 bits).
    pub const MSR_BITMAP: u32 = 0x2004;
    /// VM-exit MSR-store address.
    pub const EXIT_MSR_STORE_ADDR: u32 = 0x2006;
    /// VM-exit MSR-load address.
    pub const EXIT_MSR_LOAD_ADDR: u32 = 0x2008;
    /// VM-entry MSR-load address.
    pub const ENTRY_MSR_LOAD_ADDR: u32 = 0x200a;
    /// TSC offset.
    pub const TSC_OFFSET: u32 = 0x2010;
    /// EPT pointer.
    pub const EPTP: u32 = 0x201a;
    /// Pin-based VM-execution controls.
    pub const PIN_BASED: u32 = 0x4000;
    /// Primary processor-based VM-execution controls.
    pub const PROC_BASED: u32 = 0x4002;
    /// Exception bitmap.
    pub const EXCEPTION_BITMAP: u32 = 0x4004;
    /// Page-fault error-code mask.
    pub const PF_ERROR_MASK: u32 = 0x4006;
    /// Page-fault error-code match.
    pub const PF_ERROR_MATCH: u32 = 0x4008;
    /// CR3-target count.
    pub const CR3_TARGET_COUNT: u32 = 0x400a;
    /// VM-exit controls.
    pub const EXIT_CONTROLS: u32 = 0x400c;
    /// VM-exit MSR-store count.
    pub const EXIT_MSR_STORE_COUNT: u32 = 0x400e;
    /// VM-exit MSR-load count.
    pub const EXIT_MSR_LOAD_COUNT: u32 = 0x4010;
    /// VM-entry controls.
    pub const ENTRY_CONTROLS: u32 = 0x4012;
    /// VM-entry MSR-load count.
    pub const ENTRY_MSR_LOAD_COUNT: u32 = 0x4014;
    /// VM-entry interruption-information field (the event to inject).
    pub const ENTRY_INTR_INFO: u32 = 0x4016;
    /// VM-entry exception error code.
    pub const ENTRY_EXCEPTION_ERROR: u32 = 0x4018;
    /// VM-entry instruction length (software interrupts and exceptions).
    pub const ENTRY_INSN_LEN: u32 = 0x401a;
    /// Secondary processor-based VM-execution controls.
    pub const PROC_BASED2: u32 = 0x401e;
    /// CR0 guest/host mask: bits the guest does not own.
    pub const CR0_MASK: u32 = 0x6000;
    /// CR4 guest/host mask.
    pub const CR4_MASK: u32 = 0x6002;
    /// CR0 read shadow.
    pub const CR0_SHADOW: u32 = 0x6004;
    /// CR4 read shadow.
    pub const CR4_SHADOW: u32 = 0x6006;
}

/// Read-only exit information.
pub mod info {
    /// VM-instruction error (after VMfailValid).
    pub const VM_INSTRUCTION_ERROR: u32 = 0x4400;
    /// Exit reason: basic reason in bits 0..16, bit 31 for a failed VM entry.
    pub const EXIT_REASON: u32 = 0x4402;
    /// VM-exit interruption information (the vector of an acknowledged interrupt).
    pub const EXIT_INTR_INFO: u32 = 0x4404;
    /// IDT-vectoring information: the event whose delivery the exit cut short.
    pub const IDT_VECTORING_INFO: u32 = 0x4408;
    /// IDT-vectoring error code.
    pub const IDT_VECTORING_ERROR: u32 = 0x440a;
    /// VM-exit instruction length.
    pub const EXIT_INSN_LEN: u32 = 0x440c;
    /// Guest-physical address (EPT violation and misconfiguration).
    pub const GUEST_PHYSICAL_ADDR: u32 = 0x2400;
    /// Exit qualification.
    pub const EXIT_QUALIFICATION: u32 = 0x6400;
}

/// Guest-state fields.
pub mod guest {
    /// ES selector; CS, SS, DS, FS, GS, LDTR, TR follow 2 apart.
    pub const ES_SELECTOR: u32 = 0x0800;
    /// VMCS link pointer (all ones: none).
    pub const VMCS_LINK_POINTER: u32 = 0x2800;
    /// IA32_DEBUGCTL.
    pub const DEBUGCTL: u32 = 0x2802;
    /// IA32_EFER.
    pub const EFER: u32 = 0x2806;
    /// ES limit; CS, SS, DS, FS, GS, LDTR, TR follow 2 apart.
    pub const ES_LIMIT: u32 = 0x4800;
    /// GDTR limit.
    pub const GDTR_LIMIT: u32 = 0x4810;
    /// IDTR limit.
    pub const IDTR_LIMIT: u32 = 0x4812;
    /// ES access rights; CS, SS, DS, FS, GS, LDTR, TR follow 2 apart.
    pub const ES_ACCESS_RIGHTS: u32 = 0x4814;
    /// Interruptibility state (bit 0: blocking by STI, bit 1: by MOV SS).
    pub const INTERRUPTIBILITY: u32 = 0x4824;
    /// Activity state (0: active).
    pub const ACTIVITY_STATE: u32 = 0x4826;
    /// IA32_SYSENTER_CS.
    pub const SYSENTER_CS: u32 = 0x482a;
    /// VMX-preemption timer value (loaded at every entry: no save-timer exit control).
    pub const PREEMPTION_TIMER: u32 = 0x482e;
    /// CR0.
    pub const CR0: u32 = 0x6800;
    /// CR3.
    pub const CR3: u32 = 0x6802;
    /// CR4.
    pub const CR4: u32 = 0x6804;
    /// ES base; CS, SS, DS, FS, GS, LDTR, TR follow 2 apart.
    pub const ES_BASE: u32 = 0x6806;
    /// GDTR base.
    pub const GDTR_BASE: u32 = 0x6816;
    /// IDTR base.
    pub const IDTR_BASE: u32 = 0x6818;
    /// DR7.
    pub const DR7: u32 = 0x681a;
    /// RSP.
    pub const RSP: u32 = 0x681c;
    /// RIP.
    pub const RIP: u32 = 0x681e;
    /// RFLAGS.
    pub const RFLAGS: u32 = 0x6820;
    /// Pending debug exceptions.
    pub const PENDING_DEBUG: u32 = 0x6822;
    /// IA32_SYSENTER_ESP.
    pub const SYSENTER_ESP: u32 = 0x6824;
    /// IA32_SYSENTER_EIP.
    pub const SYSENTER_EIP: u32 = 0x6826;
}

/// Host-state fields (loaded at every VM exit).
pub mod host {
    /// ES selector; CS, SS, DS, FS, GS, TR follow 2 apart.
    pub const ES_SELECTOR: u32 = 0x0c00;
    /// CS selector.
    pub const CS_SELECTOR: u32 = 0x0c02;
    /// SS selector.
    pub const SS_SELECTOR: u32 = 0x0c04;
    /// DS selector.
    pub const DS_SELECTOR: u32 = 0x0c06;
    /// FS selector.
    pub const FS_SELECTOR: u32 = 0x0c08;
    /// GS selector.
    pub const GS_SELECTOR: u32 = 0x0c0a;
    /// TR selector.
    pub const TR_SELECTOR: u32 = 0x0c0c;
    /// IA32_EFER.
    pub const EFER: u32 = 0x2c02;
    /// IA32_SYSENTER_CS.
    pub const SYSENTER_CS: u32 = 0x4c00;
    /// CR0.
    pub const CR0: u32 = 0x6c00;
    /// CR3.
    pub const CR3: u32 = 0x6c02;
    /// CR4.
    pub const CR4: u32 = 0x6c04;
    /// FS base.
    pub const FS_BASE: u32 = 0x6c06;
    /// GS base.
    pub const GS_BASE: u32 = 0x6c08;
    /// TR base.
    pub const TR_BASE: u32 = 0x6c0a;
    /// GDTR base.
    pub const GDTR_BASE: u32 = 0x6c0c;
    /// IDTR base.
    pub const IDTR_BASE: u32 = 0x6c0e;
    /// IA32_SYSENTER_ESP.
    pub const SYSENTER_ESP: u32 = 0x6c10;
    /// IA32_SYSENTER_EIP.
    pub const SYSENTER_EIP: u32 = 0x6c12;
    /// RSP.
    pub const RSP: u32 = 0x6c14;
    /// RIP.
    pub const RIP: u32 = 0x6c16;
}

/// Basic exit reasons (bits 0..16 of the exit reason).
pub mod exit {
    /// Exception or NMI (the exception bitmap is empty: NMIs only).
    pub const EXCEPTION_NMI: u32 = 0;
    /// External interrupt (acknowledged: its vector is in the exit interruption information).
    pub const EXTERNAL_INTERRUPT: u32 = 1;
    /// Triple fault.
    pub const TRIPLE_FAULT: u32 = 2;
    /// Interrupt window.
    pub const INTERRUPT_WINDOW: u32 = 7;
    /// CPUID (always exits).
    pub const CPUID: u32 = 10;
    /// HLT.
    pub const HLT: u32 = 12;
    /// INVD (always exits).
    pub const INVD: u32 = 13;
    /// MWAIT.
    pub const MWAIT: u32 = 36;
    /// MONITOR.
    pub const MONITOR: u32 = 39;
    /// WBINVD.
    pub const WBINVD: u32 = 54;
    /// XSETBV (always exits).
    pub const XSETBV: u32 = 55;
    /// VMCALL.
    pub const VMCALL: u32 = 18;
    /// Control-register access.
    pub const CR_ACCESS: u32 = 28;
    /// `getsec`, and the VMX instructions (`vmclear` .. `vmxon`, `invept`, `invvpid`,
    /// `vmfunc`): they exit whatever the controls say.
    pub const GETSEC: u32 = 11;
    /// `vmclear`, the first of the VMX instructions' exits (19..=27).
    pub const VMCLEAR: u32 = 19;
    /// `vmxon`, the last of them.
    pub const VMXON: u32 = 27;
    /// `invept`.
    pub const INVEPT: u32 = 50;
    /// `invvpid`.
    pub const INVVPID: u32 = 53;
    /// `vmfunc`.
    pub const VMFUNC: u32 = 59;
    /// I/O instruction.
    pub const IO: u32 = 30;
    /// RDMSR.
    pub const RDMSR: u32 = 31;
    /// WRMSR.
    pub const WRMSR: u32 = 32;
    /// VM-entry failure: invalid guest state.
    pub const INVALID_GUEST_STATE: u32 = 33;
    /// EPT violation.
    pub const EPT_VIOLATION: u32 = 48;
    /// EPT misconfiguration.
    pub const EPT_MISCONFIG: u32 = 49;
    /// The VMX-preemption timer expired.
    pub const PREEMPTION_TIMER: u32 = 52;
    /// Bit 31 of the exit reason: the VM entry failed.
    pub const FAILED_ENTRY: u32 = 1 << 31;
}

/// MSRs the guest reads and writes without an exit: those in the VMCS guest state
/// (`SYSENTER_CS/ESP/EIP`, FS/GS bases) and the syscall MSRs the vCPU loads at `bind` and
/// saves at `unbind` ([`SWITCHED_MSRS`]).
pub const PASSTHROUGH_MSRS: [u32; 10] = [
    0x174,
    0x175,
    0x176,
    0xc000_0100,
    0xc000_0101,
    0xc000_0081,
    0xc000_0082,
    0xc000_0083,
    0xc000_0084,
    0xc000_0102,
];

/// `STAR`, `LSTAR`, `CSTAR`, `SFMASK`, `KernelGSBase`: not in the VMCS; the host uses
/// none of them (no `syscall`, no `swapgs`), so the guest's live in the CPU while it is
/// bound.
pub const SWITCHED_MSRS: [u32; 5] = [
    0xc000_0081,
    0xc000_0082,
    0xc000_0083,
    0xc000_0084,
    0xc000_0102,
];

/// Where MSR `msr`'s read-exiting bit is in the 4 KiB MSR bitmap: `(byte, bit)`; its
/// write-exiting bit is 2 KiB further. `None` outside the bitmap's two ranges (always
/// exits).
pub const fn msr_bitmap_read_bit(msr: u32) -> Option<(usize, u8)> {
    let (base, index) = match msr {
        0..=0x1fff => (0, msr),
        0xc000_0000..=0xc000_1fff => (0x400, msr - 0xc000_0000),
        _ => return None,
    };
    Some((base + index as usize / 8, (index % 8) as u8))
}

/// Interruption-information fields (VM-entry, VM-exit, IDT-vectoring).
pub mod intr {
    /// Valid.
    pub const VALID: u32 = 1 << 31;
    /// An error code is delivered.
    pub const ERROR_CODE: u32 = 1 << 11;
    /// Type field (bits 8..11): 0 external interrupt, 2 NMI, 3 hardware exception,
    /// 4 software interrupt, 5 privileged software exception, 6 software exception.
    pub const TYPE_MASK: u32 = 7 << 8;
    /// Type NMI.
    pub const TYPE_NMI: u32 = 2 << 8;
    /// Bits 0..8: the vector.
    pub const VECTOR_MASK: u32 = 0xff;
}

/// Where the fake VMCS of the host tests keeps `field` in the VMCS frame: one 8-byte slot
/// per (width, type, index < 32), 512 slots filling the 4 KiB frame.
#[cfg(test)]
pub(crate) fn test_slot(field: u32) -> usize {
    let width = (field >> 13) & 3;
    let ty = (field >> 10) & 3;
    let index = (field >> 1) & 31;
    ((width << 7) | (ty << 5) | index) as usize
}

/// The current VMCS of this CPU, through `vmread`/`vmwrite`. In the host tests (`cfg(test)`)
/// the same calls read and write 8-byte slots in the VMCS frame instead, so exit decoding
/// and injection run on the host without VMX.
#[cfg(target_arch = "x86_64")]
#[derive(Debug, Clone, Copy)]
pub(crate) struct Vmcs {
    /// The host's mapping of the VMCS frame (the host tests' fake VMCS lives there).
    #[cfg_attr(not(test), allow(dead_code))]
    frame: usize,
}

#[cfg(target_arch = "x86_64")]
impl Vmcs {
    /// The VMCS in the frame the host maps at `frame`.
    ///
    /// # Safety
    /// VMX is on on this CPU and that VMCS is its current one (`vmptrld`) for as long as the
    /// value is used (tests: `frame` maps a 4 KiB frame the caller owns).
    pub(crate) unsafe fn current(frame: usize) -> Self {
        Self { frame }
    }

    /// Reads `field` (VMfail — an encoding this CPU lacks — reads as 0).
    #[inline]
    pub(crate) fn read(self, field: u32) -> u64 {
        #[cfg(not(test))]
        {
            // SAFETY: VMX is on and this VMCS is current (`current`'s contract).
            unsafe { crate::hw::vmread(field) }
        }
        #[cfg(test)]
        {
            // SAFETY: the frame is the caller's (`current`'s contract); the slot is inside it.
            unsafe { ((self.frame + 8 * test_slot(field)) as *const u64).read_volatile() }
        }
    }

    /// Writes `field`.
    #[inline]
    pub(crate) fn write(self, field: u32, value: u64) {
        #[cfg(not(test))]
        {
            // SAFETY: VMX is on and this VMCS is current (`current`'s contract). The fields
            // that let a guest reach host memory (EPTP, MSR bitmap, host state) are written
            // only by `init`/`write_host_state`, whose callers uphold their contracts.
            unsafe { crate::hw::vmwrite(field, value) }
        }
        #[cfg(test)]
        {
            // SAFETY: as in `read`.
            unsafe { ((self.frame + 8 * test_slot(field)) as *mut u64).write_volatile(value) }
        }
    }
}

/// How the VMCS is filled at the first `bind`: controls, and the long-mode or real-mode
/// guest state.
mod fill;
pub use fill::{GUEST_CR0, GUEST_CR4, GUEST_EFER};

/// `EFER.LME`.
pub const EFER_LME: u64 = 1 << 8;
/// `EFER.LMA`.
pub const EFER_LMA: u64 = 1 << 10;
