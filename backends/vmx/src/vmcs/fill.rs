//! Filling the VMCS at a vCPU's first `bind`: the control fields, and the guest state of a
//! long-mode start or of a real-mode one (after INIT and a start-up IPI).

#[cfg(target_arch = "x86_64")]
use super::{ctrl, guest, Vmcs, EFER_LMA, PREEMPTION_TICKS};

/// The guest's `CR0` at start: PG, WP, NE, ET, MP, PE.
pub const GUEST_CR0: u64 = 0x8001_0033;
/// The guest's `CR4` at start (as it reads it): PAE, OSFXSR, OSXMMEXCPT.
pub const GUEST_CR4: u64 = (1 << 5) | (1 << 9) | (1 << 10);
/// The guest's `EFER` at start: LME, LMA.
pub const GUEST_EFER: u64 = 0x500;

#[cfg(target_arch = "x86_64")]
impl Vmcs {
    /// Fills the control fields: `controls`, no exception exits, every MSR through the
    /// bitmap at `msr_bitmap`, no MSR lists, `vpid`, `eptp`, the CR0/CR4 guest/host masks and
    /// read shadows of the start values.
    ///
    /// # Safety
    /// `msr_bitmap` is a frame of all ones the vCPU owns as long as this VMCS (otherwise the
    /// guest reaches host MSRs, or the hardware reads freed memory); `eptp` points to a table
    /// as `AxArchVCpu::set_ept_root` requires it (the guest reaches every frame it maps).
    pub(crate) unsafe fn init_control(
        self,
        c: &crate::controls::Controls,
        msr_bitmap: axvcpu::HostPhysAddr,
        vpid: u16,
        eptp: u64,
    ) {
        let w = |f, v| self.write(f, v);
        w(ctrl::PIN_BASED, u64::from(c.pin));
        if c.pin & crate::controls::pin::PREEMPTION_TIMER != 0 {
            // A bound on every stay in the guest: a kick whose interrupt the CPU failed to
            // turn into an exit is still seen at the next timer exit (Bochs 2.7 left an
            // external interrupt pending in the guest for good: the garbage scenario hung).
            w(guest::PREEMPTION_TIMER, PREEMPTION_TICKS);
        }
        w(ctrl::PROC_BASED, u64::from(c.proc));
        w(ctrl::PROC_BASED2, u64::from(c.proc2));
        w(ctrl::EXIT_CONTROLS, u64::from(c.exit));
        w(ctrl::ENTRY_CONTROLS, u64::from(c.entry));
        for f in [
            ctrl::EXCEPTION_BITMAP,
            ctrl::PF_ERROR_MASK,
            ctrl::PF_ERROR_MATCH,
            ctrl::CR3_TARGET_COUNT,
            ctrl::EXIT_MSR_STORE_COUNT,
            ctrl::EXIT_MSR_LOAD_COUNT,
            ctrl::ENTRY_MSR_LOAD_COUNT,
            ctrl::ENTRY_INTR_INFO,
            ctrl::TSC_OFFSET,
        ] {
            w(f, 0);
        }
        w(ctrl::MSR_BITMAP, msr_bitmap.as_usize() as u64);
        w(ctrl::VPID, u64::from(vpid));
        w(ctrl::EPTP, eptp);
        w(ctrl::CR0_MASK, c.cr0_mask);
        w(ctrl::CR0_SHADOW, GUEST_CR0);
        w(ctrl::CR4_MASK, c.cr4_mask);
        w(ctrl::CR4_SHADOW, GUEST_CR4);
    }

    /// Fills the guest state: 64-bit long mode through `boot`'s GDT and page tables, flat
    /// segments, interrupts disabled, no IDT, at `rip` with `rsp`; `CR0`/`CR4` with the bits
    /// VMX fixes (`controls`), which the guest reads as [`GUEST_CR0`]/[`GUEST_CR4`].
    pub(crate) fn init_long_mode_guest(
        self,
        c: &crate::controls::Controls,
        boot: &axvcpu_x86::boot::LongModeBoot,
        rip: u64,
        rsp: u64,
    ) {
        use axvcpu_x86::boot::{CODE_SELECTOR, DATA_SELECTOR};
        const CODE_AR: u64 = 0xa09b; // G, L, P, S, type execute/read accessed
        const DATA_AR: u64 = 0xc093; // G, D/B, P, S, type read/write accessed
        const UNUSABLE: u64 = 1 << 16;
        let w = |f, v| self.write(f, v);
        let (code, data) = (u64::from(CODE_SELECTOR), u64::from(DATA_SELECTOR));
        self.init_segments([
            (data, 0xffff_ffff, DATA_AR, 0),
            (code, 0xffff_ffff, CODE_AR, 0),
            (data, 0xffff_ffff, DATA_AR, 0),
            (data, 0xffff_ffff, DATA_AR, 0),
            (data, 0xffff_ffff, DATA_AR, 0),
            (data, 0xffff_ffff, DATA_AR, 0),
            (0, 0, UNUSABLE, 0),
            (0, 0x67, 0x8b, 0), // busy 64-bit TSS
        ]);
        w(guest::GDTR_BASE, boot.gdt_base);
        w(guest::GDTR_LIMIT, u64::from(boot.gdt_limit));
        w(guest::IDTR_BASE, 0);
        w(guest::IDTR_LIMIT, 0);
        w(guest::CR0, GUEST_CR0 | c.cr0_set);
        w(guest::CR3, boot.cr3);
        w(guest::CR4, GUEST_CR4 | c.cr4_set);
        w(guest::EFER, GUEST_EFER);
        self.init_entry(rip, rsp);
    }

    /// Fills the guest state of a CPU after INIT and a start-up IPI (unrestricted guest):
    /// real mode at `cs_selector:0` (CS base `cs_selector << 4`), 64 KiB segments, `CR0` =
    /// its INIT value and `CR4` = 0 as the guest reads them (the CPU keeps the bits VMX
    /// fixes), `EFER` = 0 and the IA-32e-mode entry control clear, interrupts off, the IDT
    /// at 0 with limit 0xffff (the real-mode vector table), LDTR unusable and TR a busy TSS
    /// (VM entry checks them even in real mode). The EPT translates its physical addresses
    /// as in every mode.
    pub(crate) fn init_real_mode_guest(self, c: &crate::controls::Controls, cs_selector: u16) {
        use axvcpu_x86::boot::INIT_CR0;
        const CODE_AR: u64 = 0x9b; // P, S, type execute/read accessed; 16-bit
        const DATA_AR: u64 = 0x93; // P, S, type read/write accessed; 16-bit
        const UNUSABLE: u64 = 1 << 16;
        let w = |f, v| self.write(f, v);
        let cs = u64::from(cs_selector);
        self.init_segments([
            (0, 0xffff, DATA_AR, 0),
            (cs, 0xffff, CODE_AR, cs << 4),
            (0, 0xffff, DATA_AR, 0),
            (0, 0xffff, DATA_AR, 0),
            (0, 0xffff, DATA_AR, 0),
            (0, 0xffff, DATA_AR, 0),
            (0, 0, UNUSABLE, 0),
            (0, 0xffff, 0x8b, 0), // busy 32-bit TSS
        ]);
        for (base, limit) in [
            (guest::GDTR_BASE, guest::GDTR_LIMIT),
            (guest::IDTR_BASE, guest::IDTR_LIMIT),
        ] {
            w(base, 0);
            w(limit, 0xffff);
        }
        w(
            ctrl::ENTRY_CONTROLS,
            u64::from(c.entry & !crate::controls::entry_ctl::IA32E_GUEST),
        );
        w(guest::CR0, INIT_CR0 | c.cr0_set);
        w(ctrl::CR0_SHADOW, INIT_CR0);
        w(guest::CR3, 0);
        w(guest::CR4, c.cr4_set);
        w(ctrl::CR4_SHADOW, 0);
        w(guest::EFER, 0);
        self.init_entry(0, 0);
    }

    /// What every start has in common: at `rip` with `rsp`, interrupts off, no debug or
    /// SYSENTER state, active, no VMCS link.
    fn init_entry(self, rip: u64, rsp: u64) {
        let w = |f, v| self.write(f, v);
        w(guest::DR7, 0x400);
        w(guest::RFLAGS, 2);
        w(guest::RIP, rip);
        w(guest::RSP, rsp);
        for f in [
            guest::DEBUGCTL,
            guest::SYSENTER_CS,
            guest::SYSENTER_ESP,
            guest::SYSENTER_EIP,
            guest::INTERRUPTIBILITY,
            guest::ACTIVITY_STATE,
            guest::PENDING_DEBUG,
        ] {
            w(f, 0);
        }
        w(guest::VMCS_LINK_POINTER, u64::MAX);
    }

    /// ES, CS, SS, DS, FS, GS, LDTR, TR in that order: selector, limit, access rights, base.
    fn init_segments(self, segs: [(u64, u64, u64, u64); 8]) {
        for (i, (sel, limit, ar, base)) in (0u32..).zip(segs) {
            self.write(guest::ES_SELECTOR + 2 * i, sel);
            self.write(guest::ES_LIMIT + 2 * i, limit);
            self.write(guest::ES_ACCESS_RIGHTS + 2 * i, ar);
            self.write(guest::ES_BASE + 2 * i, base);
        }
    }

    /// Whether the guest runs 64-bit code (`EFER.LMA` and `CS.L`): the only mode whose
    /// instructions the shared decoder reads correctly.
    pub(crate) fn in_64bit_code(self) -> bool {
        const CS_L: u64 = 1 << 13;
        self.read(guest::EFER) & EFER_LMA != 0 && self.read(guest::ES_ACCESS_RIGHTS + 2) & CS_L != 0
    }
}
