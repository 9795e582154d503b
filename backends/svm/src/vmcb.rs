//! The VMCB (AMD APM vol. 2, appendix B): the byte offsets into the 4 KiB control block,
//! intercept bits and exit codes the backend uses, and (x86_64) how it fills one for a
//! long-mode guest.

#[cfg(target_arch = "x86_64")]
use axvcpu::HostPhysAddr;
#[cfg(target_arch = "x86_64")]
use axvcpu_x86::boot::{LongModeBoot, CODE_SELECTOR, DATA_SELECTOR, INIT_CR0};

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
    /// CPUID.
    pub const CPUID: u32 = 1 << 18;
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
    /// CPUID.
    pub const CPUID: u64 = 0x72;
    /// INVD.
    pub const INVD: u64 = 0x76;
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
    /// WBINVD.
    pub const WBINVD: u64 = 0x89;
    /// MONITOR.
    pub const MONITOR: u64 = 0x8a;
    /// MWAIT.
    pub const MWAIT: u64 = 0x8b;
    /// MWAIT (conditional).
    pub const MWAIT_COND: u64 = 0x8c;
    /// XSETBV.
    pub const XSETBV: u64 = 0x8d;
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
    /// Type 3: exception.
    pub const TYPE_EXCEPTION: u64 = 3 << 8;
}

/// The default PAT, for `G_PAT`.
pub const DEFAULT_PAT: u64 = axvcpu_x86::msr::DEFAULT_PAT;

/// `TLB_CONTROL`: flush the whole TLB at VMRUN (no flush-by-ASID under QEMU).
pub const TLB_FLUSH_ALL: u8 = 1;

/// IOPM size: 12 KiB (3 frames).
pub const IOPM_FRAMES: usize = 3;
/// MSRPM size: 8 KiB (2 frames).
pub const MSRPM_FRAMES: usize = 2;

/// MSRs the guest reads and writes without an exit: the state `vmload`/`vmsave` swap with
/// the host's around every `vmrun` (FS/GS bases, `KernelGSBase`, `STAR`, `LSTAR`, `CSTAR`,
/// `SFMASK`, `SYSENTER_CS/ESP/EIP`), so the guest's values are the guest's alone.
pub const PASSTHROUGH_MSRS: [u32; 10] = [
    0x174,
    0x175,
    0x176,
    0xc000_0081,
    0xc000_0082,
    0xc000_0083,
    0xc000_0084,
    0xc000_0100,
    0xc000_0101,
    0xc000_0102,
];

/// Where MSR `msr`'s read-intercept bit is in the MSR permission map: `(byte, bit)`; the
/// write-intercept bit is the next one. `None` for an MSR outside the map's three ranges
/// (always intercepted).
pub const fn msrpm_read_bit(msr: u32) -> Option<(usize, u8)> {
    let (base, range) = match msr {
        0..=0x1fff => (0x000, msr),
        0xc000_0000..=0xc000_1fff => (0x800, msr - 0xc000_0000),
        0xc001_0000..=0xc001_1fff => (0x1000, msr - 0xc001_0000),
        _ => return None,
    };
    Some((base + range as usize / 4, (range % 4) as u8 * 2))
}

/// A VMCB through the host's mapping of its frame.
#[cfg(target_arch = "x86_64")]
#[derive(Debug, Clone, Copy)]
pub(crate) struct Vmcb(usize);

#[cfg(target_arch = "x86_64")]
impl Vmcb {
    /// The VMCB whose 4 KiB frame the host maps at `va`.
    ///
    /// # Safety
    /// `va` maps a 4 KiB frame the caller owns for as long as it uses the value, and no
    /// guest runs on that VMCB while the host reads or writes it.
    pub(crate) unsafe fn at(va: usize) -> Self {
        Self(va)
    }

    pub(crate) fn r64(self, off: usize) -> u64 {
        // SAFETY: `self.0` maps the VMCB's frame (`at`'s contract) and every caller's `off`
        // is a field offset below 4 KiB.
        unsafe { ((self.0 + off) as *const u64).read_volatile() }
    }
    pub(crate) fn w64(self, off: usize, v: u64) {
        // SAFETY: as in `r64`.
        unsafe { ((self.0 + off) as *mut u64).write_volatile(v) }
    }
    pub(crate) fn r32(self, off: usize) -> u32 {
        // SAFETY: as in `r64`.
        unsafe { ((self.0 + off) as *const u32).read_volatile() }
    }
    pub(crate) fn w32(self, off: usize, v: u32) {
        // SAFETY: as in `r64`.
        unsafe { ((self.0 + off) as *mut u32).write_volatile(v) }
    }
    fn r16(self, off: usize) -> u16 {
        // SAFETY: as in `r64`.
        unsafe { ((self.0 + off) as *const u16).read_volatile() }
    }
    fn w16(self, off: usize, v: u16) {
        // SAFETY: as in `r64`.
        unsafe { ((self.0 + off) as *mut u16).write_volatile(v) }
    }
    pub(crate) fn w8(self, off: usize, v: u8) {
        // SAFETY: as in `r64`.
        unsafe { ((self.0 + off) as *mut u8).write_volatile(v) }
    }
    fn seg(self, off: usize, selector: u16, attrib: u16, limit: u32, base: u64) {
        self.w16(off, selector);
        self.w16(off + 2, attrib);
        self.w32(off + 4, limit);
        self.w64(off + 8, base);
    }

    /// Moves `rip` past an instruction of `len` bytes and drops the interrupt shadow.
    pub(crate) fn advance_rip(self, len: u64) {
        self.set_rip(self.r64(save::RIP).wrapping_add(len));
    }

    /// Moves `rip` (and drops the interrupt shadow, which belonged to the old one).
    pub(crate) fn set_rip(self, rip: u64) {
        self.w64(save::RIP, rip);
        self.w64(ctrl::INT_STATE, self.r64(ctrl::INT_STATE) & !1);
    }

    /// Zeroes the VMCB and fills its control area: the intercepts (see
    /// [`SvmVCpu`](crate::SvmVCpu)), the permission maps, the ASID, `V_INTR_MASKING`,
    /// nested paging on with `N_CR3` = `npt_root`.
    ///
    /// # Safety
    /// `iopm` and `msrpm` are [`IOPM_FRAMES`] and [`MSRPM_FRAMES`] contiguous frames of all
    /// ones the vCPU owns as long as this VMCB (otherwise the guest reaches host ports and
    /// MSRs, or the hardware reads freed memory); `npt_root` is the root of a nested page
    /// table as `AxArchVCpu::set_ept_root` requires it (the guest reaches every frame it
    /// maps).
    pub(crate) unsafe fn init_control(
        self,
        iopm: HostPhysAddr,
        msrpm: HostPhysAddr,
        asid: u32,
        npt_root: HostPhysAddr,
    ) {
        for off in (0..4096).step_by(8) {
            self.w64(off, 0);
        }
        self.w32(
            ctrl::INTERCEPT_3,
            icpt3::INTR
                | icpt3::NMI
                | icpt3::CPUID
                | icpt3::INVD
                | icpt3::HLT
                | icpt3::INVLPGA
                | icpt3::IOIO
                | icpt3::MSR
                | icpt3::TASK_SWITCH
                | icpt3::SHUTDOWN,
        );
        self.w32(
            ctrl::INTERCEPT_4,
            icpt4::VMRUN
                | icpt4::VMMCALL
                | icpt4::VMLOAD
                | icpt4::VMSAVE
                | icpt4::STGI
                | icpt4::CLGI
                | icpt4::SKINIT
                | icpt4::WBINVD
                | icpt4::MONITOR
                | icpt4::MWAIT
                | icpt4::MWAIT_COND
                | icpt4::XSETBV,
        );
        self.w64(ctrl::IOPM_BASE_PA, iopm.as_usize() as u64);
        self.w64(ctrl::MSRPM_BASE_PA, msrpm.as_usize() as u64);
        self.w32(ctrl::ASID, asid);
        self.w64(ctrl::INT_CTL, int_ctl::V_INTR_MASKING);
        self.w64(ctrl::NP_ENABLE, 1);
        self.w64(ctrl::N_CR3, npt_root.as_usize() as u64);
    }

    /// Fills the guest state: 64-bit long mode through `boot`'s GDT and page tables, flat
    /// segments, interrupts disabled, no IDT, at `rip` with `rsp`.
    pub(crate) fn init_long_mode_guest(self, boot: &LongModeBoot, rip: u64, rsp: u64) {
        const CODE_ATTR: u16 = 0x29b; // P, S, type execute/read accessed, L
        const DATA_ATTR: u16 = 0xc93; // P, S, type read/write accessed, D/B, G
        self.seg(save::CS, CODE_SELECTOR, CODE_ATTR, 0xffff_ffff, 0);
        for seg in [save::DS, save::ES, save::SS, save::FS, save::GS] {
            self.seg(seg, DATA_SELECTOR, DATA_ATTR, 0xffff_ffff, 0);
        }
        self.seg(save::TR, 0, 0x8b, 0x67, 0);
        self.seg(save::LDTR, 0, 0x82, 0, 0);
        self.seg(save::GDTR, 0, 0, u32::from(boot.gdt_limit), boot.gdt_base);
        self.seg(save::IDTR, 0, 0, 0, 0);
        self.w8(save::CPL, 0);
        self.w64(save::EFER, 0x1500); // SVME, LMA, LME
        self.w64(save::CR4, (1 << 5) | (1 << 9) | (1 << 10)); // PAE, OSFXSR, OSXMMEXCPT
        self.w64(save::CR3, boot.cr3);
        self.w64(save::CR0, 0x8001_0033); // PG, WP, NE, ET, MP, PE
        self.w64(save::DR7, 0x400);
        self.w64(save::DR6, 0xffff_0ff0);
        self.w64(save::RFLAGS, 2);
        self.w64(save::RIP, rip);
        self.w64(save::RSP, rsp);
        self.w64(save::RAX, 0);
        self.w64(save::G_PAT, DEFAULT_PAT);
    }

    /// Fills the guest state of a CPU after INIT and a start-up IPI: real mode at
    /// `cs_selector:0` (CS base `cs_selector << 4`), 64 KiB segments, `CR0` = its INIT
    /// value, no paging, `EFER` = SVME only (required under SVM; the guest reads 0),
    /// interrupts off, the IDT at 0 with limit 0xffff (the real-mode vector table). Nested
    /// paging translates the guest's physical addresses as in every mode.
    pub(crate) fn init_real_mode_guest(self, cs_selector: u16) {
        const CODE_ATTR: u16 = 0x9b; // P, S, type execute/read accessed; 16-bit
        const DATA_ATTR: u16 = 0x93; // P, S, type read/write accessed; 16-bit
        self.seg(
            save::CS,
            cs_selector,
            CODE_ATTR,
            0xffff,
            u64::from(cs_selector) << 4,
        );
        for seg in [save::DS, save::ES, save::SS, save::FS, save::GS] {
            self.seg(seg, 0, DATA_ATTR, 0xffff, 0);
        }
        self.seg(save::TR, 0, 0x8b, 0xffff, 0);
        self.seg(save::LDTR, 0, 0x82, 0xffff, 0);
        self.seg(save::GDTR, 0, 0, 0xffff, 0);
        self.seg(save::IDTR, 0, 0, 0xffff, 0);
        self.w8(save::CPL, 0);
        self.w64(save::EFER, crate::hw::EFER_SVME);
        self.w64(save::CR4, 0);
        self.w64(save::CR3, 0);
        self.w64(save::CR0, INIT_CR0);
        self.w64(save::DR7, 0x400);
        self.w64(save::DR6, 0xffff_0ff0);
        self.w64(save::RFLAGS, 2);
        self.w64(save::RIP, 0);
        self.w64(save::RSP, 0);
        self.w64(save::RAX, 0);
        self.w64(save::G_PAT, DEFAULT_PAT);
    }

    /// Whether the guest runs 64-bit code (`EFER.LMA` and `CS.L`): the only mode whose
    /// instructions the backend decodes, and where CS's base is 0.
    pub(crate) fn in_64bit_code(self) -> bool {
        const EFER_LMA: u64 = 1 << 10;
        const CS_L: u32 = 1 << 9;
        self.r64(save::EFER) & EFER_LMA != 0 && u32::from(self.r16(save::CS + 2)) & CS_L != 0
    }

    /// The linear address of the guest's `rip`: CS base + `rip` outside 64-bit code.
    pub(crate) fn rip_linear(self) -> u64 {
        let rip = self.r64(save::RIP);
        if self.in_64bit_code() {
            rip
        } else {
            self.r64(save::CS + 8).wrapping_add(rip & 0xffff_ffff)
        }
    }
}
