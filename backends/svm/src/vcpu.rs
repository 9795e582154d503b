//! [`SvmVCpu`]: one guest CPU in 64-bit long mode under AMD SVM with nested paging, its
//! configuration, and its [`AxArchVCpu`] impl, which delegates to [`exit`] (exit decoding)
//! and [`irq`] (interrupt delivery, kicks, the entry around the world switch).

mod exit;
mod irq;
#[cfg(test)]
mod tests;

use alloc::vec;
use core::sync::atomic::{AtomicU32, Ordering};

use axvcpu::{
    AxArchVCpu, AxErrorKind, AxVCpuExitReason, AxVCpuHal, GuestPhysAddr, HostPhysAddr, IpiKicker,
    VCpuError, VCpuResult,
};
use axvcpu_npt::{NestedPageTable, NptView, X86Npt};
use axvcpu_x86::apic::IcrDecoder;
use axvcpu_x86::boot::{
    long_mode_tables_size, write_long_mode_tables, LongModeBoot, LongModeSetup,
};

use crate::hw;
use crate::regs::{gpr, Gprs};
use crate::vmcb::{msrpm_read_bit, Vmcb, IOPM_FRAMES, MSRPM_FRAMES, PASSTHROUGH_MSRS};

pub use axvcpu_x86::lapic::{LapicKick, KICK_VECTOR};

pub use axvcpu_x86::boot::GuestBoot;

/// [`SvmVCpu::setup`](AxArchVCpu::setup)'s configuration: how the vCPU starts (the start
/// state is [`LongModeSetup`]'s, shared by the bare-metal x86 backends).
pub type SvmSetupConfig = LongModeSetup;

static NEXT_ASID: AtomicU32 = AtomicU32::new(0);

/// Frames a vCPU owns: VMCB, host state area (`vmsave`), I/O and MSR permission maps.
#[derive(Debug, Clone, Copy)]
struct Frames {
    vmcb: HostPhysAddr,
    host_area: HostPhysAddr,
    iopm: HostPhysAddr,
    msrpm: HostPhysAddr,
}

impl Frames {
    /// Allocates them, the permission maps filled with ones (everything intercepted).
    fn alloc<H: AxVCpuHal>() -> VCpuResult<Self> {
        let no_memory = |what| VCpuError::new(AxErrorKind::NoMemory, what);
        let vmcb = H::alloc_frame().ok_or(no_memory("no frame for the VMCB"))?;
        let Some(host_area) = H::alloc_frame() else {
            H::dealloc_frame(vmcb);
            return Err(no_memory("no frame for the host state area"));
        };
        let Some(iopm) = H::alloc_contiguous_frames(IOPM_FRAMES, 1) else {
            H::dealloc_frame(vmcb);
            H::dealloc_frame(host_area);
            return Err(no_memory("no frames for the I/O permission map"));
        };
        let Some(msrpm) = H::alloc_contiguous_frames(MSRPM_FRAMES, 1) else {
            H::dealloc_frame(vmcb);
            H::dealloc_frame(host_area);
            H::dealloc_contiguous_frames(iopm, IOPM_FRAMES);
            return Err(no_memory("no frames for the MSR permission map"));
        };
        for (pa, frames) in [(iopm, IOPM_FRAMES), (msrpm, MSRPM_FRAMES)] {
            let va = H::phys_to_virt(pa).as_usize() as *mut u8;
            // SAFETY: `frames` contiguous frames just allocated, through the HAL's mapping.
            unsafe { core::ptr::write_bytes(va, 0xff, frames * 4096) };
        }
        let msrpm_va = H::phys_to_virt(msrpm).as_usize() as *mut u8;
        for msr in PASSTHROUGH_MSRS {
            if let Some((byte, bit)) = msrpm_read_bit(msr) {
                // SAFETY: `byte` < 8 KiB (the map's size), in the frames just allocated.
                unsafe {
                    let p = msrpm_va.add(byte);
                    p.write(p.read() & !(3 << bit));
                }
            }
        }
        Ok(Self {
            vmcb,
            host_area,
            iopm,
            msrpm,
        })
    }

    fn free<H: AxVCpuHal>(&self) {
        H::dealloc_frame(self.vmcb);
        H::dealloc_frame(self.host_area);
        H::dealloc_contiguous_frames(self.iopm, IOPM_FRAMES);
        H::dealloc_contiguous_frames(self.msrpm, MSRPM_FRAMES);
    }
}

/// An x86-64 vCPU under AMD SVM: the guest starts in long mode (or in real mode at a SIPI
/// address, [`GuestBoot::RealMode`]), translated by the nested
/// page table given to `set_ept_root` (`NestedPageTable<H, X86Npt>`, `N_CR3` = its root).
///
/// **Intercepts.** VMMCALL, HLT, every port (I/O permission map all ones), every MSR but
/// the ones `vmload`/`vmsave` swap (FS/GS bases, `KernelGSBase`, `STAR`/`LSTAR`/`CSTAR`/
/// `SFMASK`, `SYSENTER_*`: the guest cannot reach a host MSR), CPUID (answered inside
/// through [`axvcpu_x86::cpuid::filter_for`]), shutdown, INTR and NMI (host interrupts),
/// VINTR while an interrupt waits for a window, the SVM instructions, INVD and WBINVD
/// (skipped: caches are coherent), MONITOR/MWAIT (#UD: CPUID hides them), XSETBV (#GP:
/// CPUID hides XSAVE), INVLPGA and task switches (these two end `run` with an `Err`
/// carrying the exit code).
///
/// **Exceptions.** `inject_exception(vector, error_code)` delivers an exception through
/// `EVENTINJ` at the next entry; after a read exit the instruction faults instead of
/// completing, and after a `SysRegWrite` `rip` goes back onto the `wrmsr`.
///
/// **Interrupts.** `inject_interrupt(vector)` takes vectors 32..=255 and makes them
/// pending (a pending vector injected again merges with it). The highest pending vector is
/// injected through `EVENTINJ` when the guest has `RFLAGS.IF` set and no interrupt shadow;
/// otherwise the backend sets `V_IRQ` with the VINTR intercept, and the window's exit
/// ([`Nothing`](AxVCpuExitReason::Nothing): the core enters again) injects it. An event
/// whose delivery was cut short by an exit (`EXITINTINFO`) is re-injected as is, so each
/// is taken once.
///
/// **Kicks and host interrupts.** The kicker is an [`IpiKicker`] sending [`KICK_VECTOR`]
/// ([`LapicKick`]). `V_INTR_MASKING` = 1 and the host enters with `RFLAGS.IF` = 1 under
/// GIF = 0, so any host interrupt makes the guest exit. At an INTR exit the backend reads
/// the local APIC's IRR (before the host takes anything), then sets GIF and lets the host
/// take pending interrupts through its own IDT (the kick vector's handler only sends EOI),
/// then disables them again. An INTR or NMI exit returns
/// [`Kicked`](AxVCpuExitReason::Kicked) when a kick was requested; otherwise an INTR exit
/// whose pending vector was [`KICK_VECTOR`] (the late IPI of a kick already taken before an
/// entry) returns [`Nothing`](AxVCpuExitReason::Nothing), one for another vector returns
/// [`ExternalInterrupt`](AxVCpuExitReason::ExternalInterrupt) with the highest vector that
/// was pending (already handled by the host's IDT when `run` returns), and an NMI exit
/// returns `ExternalInterrupt { vector: 2 }`. The HAL's `current_cpu_id` must be the local
/// APIC id.
///
/// **State.** `vmrun` moves the VMCB's guest state (segments, control registers, `rip`,
/// `rsp`, `rax`, `EFER`, ...); `vmload`/`vmsave` around it swap FS/GS/TR/LDTR bases,
/// `KernelGSBase`, `STAR`/`LSTAR`/`CSTAR`/`SFMASK` and `SYSENTER_*` with the host's; the
/// world switch moves the other 14 GPRs. The x87/SSE state (FXSAVE area) is the vCPU's: `bind`
/// loads it, `unbind` saves it (the bare-metal host uses no x87/SSE registers, so nothing
/// is switched around each `vmrun`; on other hosts, the host tests, neither happens).
/// `PAT` and `EFER` live in the VMCB (guest `rdmsr`/`wrmsr` of them are answered inside);
/// the MSRs `vmload`/`vmsave` swap are not intercepted. Not given: AVX and `XCR0` (CPUID
/// hides XSAVE, `xsetbv` gets #GP), debug registers `DR0..3`.
pub struct SvmVCpu<H: AxVCpuHal> {
    frames: Frames,
    gprs: Gprs,
    vm_id: usize,
    vcpu_id: usize,
    entry: GuestPhysAddr,
    ept_root: HostPhysAddr,
    asid: u32,
    /// Flush the whole TLB at the next entry (no flush-by-ASID under QEMU).
    flush_tlb: bool,
    kicker: IpiKicker<LapicKick<H>>,
    irq: irq::Interrupts,
    pending_read: Option<axvcpu_x86::exit::PendingRead>,
    /// `rip` after the last `wrmsr` handed to the hypervisor (`SysRegWrite`): where an
    /// exception it injects for that write finds the instruction to fault on.
    msr_write_rip: Option<u64>,
    icr: IcrDecoder,
    /// The guest's x87/SSE state while the vCPU is not bound (loaded in the CPU while it
    /// is: the bare-metal host uses none of those registers).
    fpu: hw::FxArea,
}

impl<H: AxVCpuHal> core::fmt::Debug for SvmVCpu<H> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SvmVCpu")
            .field("vm_id", &self.vm_id)
            .field("vcpu_id", &self.vcpu_id)
            .field("asid", &self.asid)
            .field("frames", &self.frames)
            .field("gprs", &self.gprs)
            .field("irq", &self.irq)
            .field("pending_read", &self.pending_read)
            .field("fpu", &self.fpu)
            .finish()
    }
}

impl<H: AxVCpuHal> SvmVCpu<H> {
    #[inline]
    fn vmcb(&self) -> Vmcb {
        // SAFETY: the VMCB frame is this vCPU's until `drop`, mapped by the HAL; no guest
        // runs on it while `&self` is borrowed outside `vmrun`.
        unsafe { Vmcb::at(H::phys_to_virt(self.frames.vmcb).as_usize()) }
    }

    fn reg(&self, r: usize) -> u64 {
        self.gprs.get(self.vmcb(), r)
    }

    fn set_reg(&mut self, r: usize, v: u64) {
        let vmcb = self.vmcb();
        self.gprs.set(vmcb, r, v);
    }

    fn npt(&self) -> Option<NptView<H, X86Npt>> {
        // SAFETY: `set_ept_root`'s contract keeps the table alive, in frames of `H`, for
        // the vCPU's life; `run` is never concurrent with the hypervisor changing it.
        unsafe { NestedPageTable::<H, X86Npt>::from_root(self.ept_root) }.ok()
    }

    /// Writes the long-mode boot tables into guest memory at `at`, through the NPT.
    fn write_boot_tables(&self, at: u64) -> VCpuResult<LongModeBoot> {
        let size = long_mode_tables_size(at.saturating_add(1 << 20));
        let mut tables = vec![0u8; size];
        let boot = write_long_mode_tables(&mut tables, at, at)?;
        let npt = self
            .npt()
            .ok_or(VCpuError::invalid_input("the NPT root is not a table"))?;
        // SAFETY: the table maps guest RAM the hypervisor keeps allocated for the vCPU's
        // life and reaches only through raw pointers (set_ept_root's contract).
        unsafe { npt.write_guest(GuestPhysAddr::from(at as usize), &tables) }?;
        Ok(boot)
    }
}

impl<H: AxVCpuHal> SvmVCpu<H> {
    /// Whether the guest has interrupts enabled (`RFLAGS.IF`): a hypervisor tells a guest
    /// halted for good (`hlt` with interrupts off, how Linux without ACPI ends
    /// `poweroff`) from one waiting for an interrupt.
    pub fn interrupts_enabled(&self) -> bool {
        self.vmcb().r64(crate::vmcb::save::RFLAGS) & (1 << 9) != 0
    }
}

fn check_gpr(reg: usize) -> VCpuResult {
    if reg < gpr::COUNT {
        Ok(())
    } else {
        Err(VCpuError::invalid_input("x86 has GPRs 0..16").with_value(reg as u64))
    }
}

impl<H: AxVCpuHal> AxArchVCpu for SvmVCpu<H> {
    type CreateConfig = ();
    type SetupConfig = SvmSetupConfig;
    type Hal = H;
    type Kicker = IpiKicker<LapicKick<H>>;

    fn new(vm_id: usize, vcpu_id: usize, _config: ()) -> VCpuResult<Self> {
        let frames = Frames::alloc::<H>()?;
        let nasid = hw::svm_with_np().unwrap_or(2).max(2);
        let tags = (nasid - 1).min(axvcpu::tlb_tags::tlb_tag_limit().min(u32::MAX as usize) as u32);
        let asid = 1 + NEXT_ASID.fetch_add(1, Ordering::Relaxed) % tags;
        Ok(Self {
            frames,
            gprs: Gprs::default(),
            vm_id,
            vcpu_id,
            entry: GuestPhysAddr::from(0),
            ept_root: HostPhysAddr::from(0),
            asid,
            flush_tlb: true,
            kicker: IpiKicker::new(),
            irq: irq::Interrupts::default(),
            pending_read: None,
            msr_write_rip: None,
            icr: IcrDecoder::new(),
            fpu: hw::FxArea::initial(),
        })
    }

    fn set_entry(&mut self, entry: GuestPhysAddr) -> VCpuResult {
        self.entry = entry;
        Ok(())
    }

    unsafe fn set_ept_root(&mut self, ept_root: HostPhysAddr) -> VCpuResult {
        if ept_root.as_usize() & 0xfff != 0 {
            return Err(
                VCpuError::invalid_input("the NPT root must be 4 KiB aligned")
                    .with_value(ept_root.as_usize() as u64),
            );
        }
        self.ept_root = ept_root;
        Ok(())
    }

    fn setup(&mut self, config: SvmSetupConfig) -> VCpuResult {
        let entry = self.entry.as_usize() as u64;
        let boot = match config.boot {
            GuestBoot::Tables(boot) => Some(boot),
            GuestBoot::WriteTablesAt(at) => Some(self.write_boot_tables(at)?),
            GuestBoot::RealMode => None,
        };
        // Checked before the VMCB is touched: a refused setup leaves the vCPU as it was.
        let real_mode_cs = match boot {
            Some(_) => 0,
            None => axvcpu_x86::boot::sipi_code_segment(entry)?,
        };
        let v = self.vmcb();
        let f = self.frames;
        // SAFETY: the permission maps are this vCPU's, all ones, freed only with the VMCB;
        // the root came through `set_ept_root`, whose contract is the one required.
        unsafe { v.init_control(f.iopm, f.msrpm, self.asid, self.ept_root) };
        match boot {
            Some(boot) => v.init_long_mode_guest(&boot, entry, config.rsp_of(self.vcpu_id)),
            // SVM runs real mode as it is: nested paging translates its physical addresses.
            None => v.init_real_mode_guest(real_mode_cs),
        }
        Ok(())
    }

    fn run(&mut self) -> VCpuResult<AxVCpuExitReason> {
        if !self.enter() {
            return Ok(AxVCpuExitReason::Kicked);
        }
        self.decode_exit()
    }

    fn bind(&mut self) -> VCpuResult {
        // The guest's x87/SSE registers come in with it (not around every `vmrun`: the
        // host uses none of them).
        #[cfg(target_os = "none")]
        hw::fxrstor(&self.fpu);
        self.kicker.bind_to(H::current_cpu_id());
        // ASIDs are not flushed one by one (no flush-by-ASID): flush all on a new CPU.
        self.flush_tlb = true;
        Ok(())
    }

    fn unbind(&mut self) -> VCpuResult {
        #[cfg(target_os = "none")]
        hw::fxsave(&mut self.fpu);
        self.kicker.unbind();
        Ok(())
    }

    fn set_gpr(&mut self, reg: usize, val: usize) -> VCpuResult {
        check_gpr(reg)?;
        self.set_reg(reg, val as u64);
        Ok(())
    }

    fn get_gpr(&self, reg: usize) -> VCpuResult<usize> {
        check_gpr(reg)?;
        Ok(self.reg(reg) as usize)
    }

    fn pc(&self) -> usize {
        self.vmcb().r64(crate::vmcb::save::RIP) as usize
    }

    fn set_pc(&mut self, pc: usize) -> VCpuResult {
        self.vmcb().set_rip(pc as u64);
        Ok(())
    }

    fn set_return_value(&mut self, val: usize) {
        self.set_reg(gpr::RAX, val as u64);
    }

    fn set_boot_arg(&mut self, _arg: usize) -> VCpuResult {
        // x86 INIT-SIPI carries no argument.
        Ok(())
    }

    fn complete_read(&mut self, value: u64) -> VCpuResult {
        self.finish_read(value)
    }

    fn inject_interrupt(&mut self, vector: usize) -> VCpuResult {
        self.irq.inject(vector)
    }

    fn inject_exception(&mut self, vector: u8, error_code: Option<u32>) -> VCpuResult {
        self.irq.exception(vector, error_code)?;
        // The instruction of a read exit faults instead of completing; a `wrmsr` the
        // hypervisor refuses faults too, so `rip` goes back onto it (the exit moved it on).
        self.pending_read = None;
        if let Some(after) = self.msr_write_rip.take() {
            let v = self.vmcb();
            if v.r64(crate::vmcb::save::RIP) == after {
                v.set_rip(after.wrapping_sub(exit::MSR_INSN_LEN));
            }
        }
        Ok(())
    }

    fn has_pending_interrupt(&self) -> bool {
        self.irq.has_pending()
    }

    fn check_interrupt_vector(vector: usize) -> VCpuResult {
        axvcpu_x86::lapic::check_injectable_vector(vector)
    }

    fn kicker(&self) -> Self::Kicker {
        self.kicker.clone()
    }

    fn nested_page_table_changed(&mut self) -> VCpuResult {
        self.flush_tlb = true;
        Ok(())
    }
}

impl<H: AxVCpuHal> Drop for SvmVCpu<H> {
    fn drop(&mut self) {
        self.frames.free::<H>();
    }
}
