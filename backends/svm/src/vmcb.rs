//! The VMCB layout (AMD APM vol. 2, appendix B) and the constants the backend uses: byte
//! offsets into the 4 KiB control block, intercept bits, exit codes.

/// Control area: offsets.
pub mod ctrl {
    /// CR read (bits 0..16) / write (16..32) intercepts.
    pub const INTERCEPT_CR: usize = 0x000;
    /// Exception intercepts (one bit per vector).
    pub const INTERCEPT_EXCEPTIONS: usize = 0x008;
    /// Intercept vector 3 (see [`super::icpt3`]).
    pub const INTERCEPT_3: usize = 0x00c;
    /// Intercept vector 4 (see [`super::icpt4`]).
    pub const INTERCEPT_4: usize = 0x010;
    /// Physical address of the I/O permission map.
    pub const IOPM_BASE_PA: usize = 0x040;
    /// Physical address of the MSR permission map.
    pub const MSRPM_BASE_PA: usize = 0x048;
    /// Guest ASID (32 bits).
    pub const ASID: usize = 0x058;
    /// TLB control (8 bits).
    pub const TLB_CONTROL: usize = 0x05c;
    /// V_TPR, V_IRQ, V_INTR_PRIO, V_IGN_TPR, V_INTR_MASKING, V_INTR_VECTOR.
    pub const INT_CTL: usize = 0x060;
    /// Interrupt shadow (bit 0).
    pub const INT_STATE: usize = 0x068;
    /// Exit code.
    pub const EXITCODE: usize = 0x070;
    /// Exit information 1.
    pub const EXITINFO1: usize = 0x078;
    /// Exit information 2.
    pub const EXITINFO2: usize = 0x080;
    /// Event being delivered when the exit happened.
    pub const EXITINTINFO: usize = 0x088;
    /// Nested paging enable (bit 0).
    pub const NP_ENABLE: usize = 0x090;
    /// Event to inject at the next VMRUN.
    pub const EVENTINJ: usize = 0x0a8;
    /// Nested page table root.
    pub const N_CR3: usize = 0x0b0;
    /// VMCB clean bits.
    pub const CLEAN: usize = 0x0c0;
}

/// State save area: offsets (0x400 + the APM's offsets).
pub mod save {
    /// ES (selector u16, attributes u16, limit u32, base u64).
    pub const ES: usize = 0x400;
    /// CS.
    pub const CS: usize = 0x410;
    /// SS.
    pub const SS: usize = 0x420;
    /// DS.
    pub const DS: usize = 0x430;
    /// FS.
    pub const FS: usize = 0x440;
    /// GS.
    pub const GS: usize = 0x450;
    /// GDTR (limit, base).
    pub const GDTR: usize = 0x460;
    /// LDTR.
    pub const LDTR: usize = 0x470;
    /// IDTR (limit, base).
    pub const IDTR: usize = 0x480;
    /// TR.
    pub const TR: usize = 0x490;
    /// CPL (8 bits).
    pub const CPL: usize = 0x4cb;
    /// EFER.
    pub const EFER: usize = 0x4d0;
    /// CR4.
    pub const CR4: usize = 0x548;
    /// CR3.
    pub const CR3: usize = 0x550;
    /// CR0.
    pub const CR0: usize = 0x558;
    /// DR7.
    pub const DR7: usize = 0x560;
    /// DR6.
    pub const DR6: usize = 0x568;
    /// RFLAGS.
    pub const RFLAGS: usize = 0x570;
    /// RIP.
    pub const RIP: usize = 0x578;
    /// RSP.
    pub const RSP: usize = 0x5d8;
    /// RAX.
    pub const RAX: usize = 0x5f8;
    /// Guest PAT (used with nested paging).
    pub const G_PAT: usize = 0x668;
}

/// Intercept vector 3 bits.
pub mod icpt3 {
    /// Physical maskable interrupt.
    pub const INTR: u32 = 1 << 0;
    /// NMI.
    pub const NMI: u32 = 1 << 1;
    /// Virtual interrupt window (V_IRQ about to be taken).
    pub const VINTR: u32 = 1 << 4;
    /// INVD.
    pub const INVD: u32 = 1 << 22;
    /// HLT.
    pub const HLT: u32 = 1 << 24;
    /// INVLPGA.
    pub const INVLPGA: u32 = 1 << 26;
    /// I/O through the permission map.
    pub const IOIO: u32 = 1 << 27;
    /// MSR accesses through the permission map.
    pub const MSR: u32 = 1 << 28;
    /// Task switches.
    pub const TASK_SWITCH: u32 = 1 << 29;
    /// Shutdown (triple fault).
    pub const SHUTDOWN: u32 = 1 << 31;
}

/// Intercept vector 4 bits.
pub mod icpt4 {
    /// VMRUN (required by the consistency checks).
    pub const VMRUN: u32 = 1 << 0;
    /// VMMCALL.
    pub const VMMCALL: u32 = 1 << 1;
    /// VMLOAD.
    pub const VMLOAD: u32 = 1 << 2;
    /// VMSAVE.
    pub const VMSAVE: u32 = 1 << 3;
    /// STGI.
    pub const STGI: u32 = 1 << 4;
    /// CLGI.
    pub const CLGI: u32 = 1 << 5;
    /// SKINIT.
    pub const SKINIT: u32 = 1 << 6;
    /// WBINVD.
    pub const WBINVD: u32 = 1 << 9;
    /// MONITOR.
    pub const MONITOR: u32 = 1 << 10;
    /// MWAIT.
    pub const MWAIT: u32 = 1 << 11;
    /// MWAIT (conditional).
    pub const MWAIT_COND: u32 = 1 << 12;
    /// XSETBV.
    pub const XSETBV: u32 = 1 << 13;
}

/// `INT_CTL` bits.
pub mod int_ctl {
    /// V_IRQ: a virtual interrupt is pending.
    pub const V_IRQ: u64 = 1 << 8;
    /// V_IGN_TPR: the virtual interrupt ignores the virtual TPR.
    pub const V_IGN_TPR: u64 = 1 << 20;
    /// V_INTR_MASKING: the host's RFLAGS.IF masks physical interrupts in the guest.
    pub const V_INTR_MASKING: u64 = 1 << 24;
}

/// Exit codes.
pub mod exit {
    /// First exception exit (0x40 + vector).
    pub const EXCP_BASE: u64 = 0x40;
    /// Physical interrupt.
    pub const INTR: u64 = 0x60;
    /// NMI.
    pub const NMI: u64 = 0x61;
    /// Virtual interrupt window.
    pub const VINTR: u64 = 0x64;
    /// HLT.
    pub const HLT: u64 = 0x78;
    /// IN/OUT.
    pub const IOIO: u64 = 0x7b;
    /// RDMSR/WRMSR.
    pub const MSR: u64 = 0x7c;
    /// Shutdown.
    pub const SHUTDOWN: u64 = 0x7f;
    /// VMMCALL.
    pub const VMMCALL: u64 = 0x81;
    /// Nested page fault.
    pub const NPF: u64 = 0x400;
    /// VMEXIT_INVALID, as its low 32 bits (QEMU stores 0xffff_ffff).
    pub const INVALID: u32 = 0xffff_ffff;
}

/// `EVENTINJ` / `EXITINTINFO` fields.
pub mod event {
    /// Valid.
    pub const VALID: u64 = 1 << 31;
    /// Error code valid.
    pub const EV: u64 = 1 << 11;
    /// Type field (bits 8..11): 0 = external interrupt.
    pub const TYPE_MASK: u64 = 7 << 8;
}

/// The default PAT, for `G_PAT`.
pub const DEFAULT_PAT: u64 = 0x0007_0406_0007_0406;

/// `TLB_CONTROL`: flush the whole TLB at VMRUN (no flush-by-ASID under QEMU).
pub const TLB_FLUSH_ALL: u8 = 1;

/// IOPM size: 12 KiB (3 frames).
pub const IOPM_FRAMES: usize = 3;
/// MSRPM size: 8 KiB (2 frames).
pub const MSRPM_FRAMES: usize = 2;
