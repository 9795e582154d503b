//! [`VmxVCpu`]: one guest CPU under Intel VMX with EPT (started in 64-bit long mode, or in
//! real mode as after INIT and a start-up IPI), its
//! configuration, and its [`AxArchVCpu`] impl, which delegates to [`bind`] (the VMCS on a
//! CPU), [`exit`] (exit decoding) and [`irq`] (interrupt delivery, kicks, the entry around
//! the world switch).

mod bind;
mod exit;
mod irq;
#[cfg(test)]
mod tests;

use core::sync::atomic::{AtomicU32, Ordering};

use axvcpu::{
    AxArchVCpu, AxErrorKind, AxVCpuExitReason, AxVCpuHal, GuestPhysAddr, HostPhysAddr, IpiKicker,
    VCpuError, VCpuResult,
};
use axvcpu_npt::{Ept, NestedPageTable, NptView};
use axvcpu_x86::apic::IcrDecoder;
use axvcpu_x86::boot::{
    long_mode_tables_size, write_long_mode_tables, LongModeBoot, LongModeSetup,
};

use crate::controls::Controls;
use crate::regs::{gpr, Regs};
use crate::vmcs::Vmcs;

pub use axvcpu_x86::lapic::{LapicKick, KICK_VECTOR};

pub use axvcpu_x86::boot::GuestBoot;

/// [`VmxVCpu::setup`](AxArchVCpu::setup)'s configuration: how the vCPU starts (the start
/// state is [`LongModeSetup`]'s, shared by the bare-metal x86 backends).
pub type VmxSetupConfig = LongModeSetup;

static NEXT_VPID: AtomicU32 = AtomicU32::new(0);

/// How the guest starts, as `setup` decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Start {
    /// Long mode through these boot tables, with this first `rsp`.
    LongMode(LongModeBoot, u64),
    /// Real mode with this CS selector (unrestricted guest).
    RealMode(u16),
}

/// Where the VMCS is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum VmcsState {
    /// Never loaded: the first `bind` clears, loads and fills it.
    Fresh,
    /// Filled and cleared (in memory, not active on any CPU).
    Clear,
    /// Active (loaded) on this CPU.
    Active(usize),
}

/// An x86-64 vCPU under Intel VMX with unrestricted guest: the guest starts in long mode
/// (or in real mode at a SIPI address, [`GuestBoot::RealMode`], and switches modes itself),
/// translated by the EPT given to `set_ept_root` (`NestedPageTable<H, Ept>`, EPTP =
/// [`Ept::eptp`] of its root).
///
/// **Exits.** External interrupts (acknowledged at exit), NMIs, HLT, every port
/// (unconditional I/O exiting), every MSR but [`PASSTHROUGH_MSRS`](crate::vmcs::PASSTHROUGH_MSRS)
/// (the MSR bitmap), MWAIT, MONITOR, WBINVD, moves to and from CR8, CR0/CR4 writes of the
/// bits VMX fixes, the interrupt window while an interrupt waits, and what VMX always exits
/// on (CPUID, VMCALL, INVD, XSETBV, the VMX instructions, triple fault). Answered inside:
/// CPUID (through [`axvcpu_x86::cpuid::filter_for`]), `EFER` (the VMCS's guest `EFER`),
/// `PAT` (kept per vCPU, not applied to memory types), `IA32_MISC_ENABLE` and
/// `IA32_BIOS_SIGN_ID` (fixed values, `axvcpu_x86::msr`) reads and writes, INVD and WBINVD
/// (skipped), MONITOR/MWAIT (#UD), XSETBV (#GP(0)), CR4 writes of a fixed bit (#GP(0)),
/// CR0 writes clearing NE (kept in the read shadow) and CR0 writes changing PG (which
/// enter or leave IA-32e mode when `EFER.LME` is set: `EFER.LMA` and the IA-32e-mode
/// entry control follow); see the crate docs for the rest.
///
/// **Exceptions.** `inject_exception(vector, error_code)` delivers a hardware exception
/// through the VM-entry interruption information at the next entry; after a read exit the
/// instruction faults instead of completing, and after a `SysRegWrite` `rip` goes back onto
/// the `wrmsr`.
///
/// **Interrupts.** `inject_interrupt(vector)` takes vectors 32..=255 and makes them
/// pending (a pending vector injected again merges with it). The highest pending vector is
/// injected through the VM-entry interruption information when the guest has `RFLAGS.IF`
/// and no STI/MOV-SS blocking; otherwise interrupt-window exiting is on, and the window's
/// exit ([`Nothing`](AxVCpuExitReason::Nothing)) injects it. An event whose delivery an exit
/// cut short (IDT-vectoring information) is re-injected as is.
///
/// **Kicks and host interrupts.** The kicker is an [`IpiKicker`] sending [`KICK_VECTOR`]
/// ([`LapicKick`]). External-interrupt exiting makes any host interrupt end the guest's
/// run; the exit acknowledges it, and the backend hands its vector to the host's IDT
/// (`int vector`, interrupts still off) before `run` returns: `Kicked` if a kick was
/// requested, `Nothing` for [`KICK_VECTOR`] (the late IPI of a kick already taken),
/// otherwise `ExternalInterrupt { vector }`; an NMI is `ExternalInterrupt { vector: 2 }`.
///
/// **State.** The VMCS switches the guest's segments, control registers, `rip`, `rsp`,
/// `RFLAGS`, `EFER`, `SYSENTER_*`, `DEBUGCTL`, DR7; the world switch moves the other 15
/// GPRs. `bind` loads, and `unbind` saves, the guest's x87/SSE state (FXSAVE) and
/// `STAR`/`LSTAR`/`CSTAR`/`SFMASK`/`KernelGSBase` (the bare-metal host uses none of them;
/// the guest reaches them without exits while bound; on other hosts, the host tests,
/// neither happens). Not given: AVX and `XCR0` (CPUID hides XSAVE), `DR0..3`.
pub struct VmxVCpu<H: AxVCpuHal> {
    vmcs: HostPhysAddr,
    msr_bitmap: HostPhysAddr,
    state: VmcsState,
    launched: bool,
    regs: Regs,
    vm_id: usize,
    vcpu_id: usize,
    entry: GuestPhysAddr,
    ept_root: HostPhysAddr,
    vpid: u16,
    /// What `setup` decided: long mode (the boot tables and the first `rsp`) or real mode.
    start: Option<Start>,
    /// The controls the VMCS was filled with (first `bind`).
    controls: Option<Controls>,
    /// Flush EPT and VPID translations at the next entry.
    flush_tlb: bool,
    kicker: IpiKicker<LapicKick<H>>,
    irq: irq::Interrupts,
    pending_read: Option<axvcpu_x86::exit::PendingRead>,
    /// `rip` after, and the length of, the last `wrmsr` handed to the hypervisor
    /// (`SysRegWrite`): where an exception it injects for that write faults.
    msr_write_rip: Option<(u64, u64)>,
    /// The guest's x87/SSE state while the vCPU is not bound (in the CPU while it is).
    fpu: axvcpu_x86::cpu::FxArea,
    /// The guest's [`SWITCHED_MSRS`](crate::vmcs::SWITCHED_MSRS) while it is not bound.
    syscall_msrs: [u64; 5],
    /// The guest's `PAT`, as written (kept, not applied: the VMCS does not load it).
    pat: u64,
    icr: IcrDecoder,
}

impl<H: AxVCpuHal> core::fmt::Debug for VmxVCpu<H> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("VmxVCpu")
            .field("vm_id", &self.vm_id)
            .field("vcpu_id", &self.vcpu_id)
            .field("vpid", &self.vpid)
            .field("vmcs", &self.vmcs)
            .field("state", &self.state)
            .field("regs", &self.regs)
            .field("irq", &self.irq)
            .field("pending_read", &self.pending_read)
            .field("fpu", &self.fpu)
            .field("syscall_msrs", &self.syscall_msrs)
            .finish()
    }
}

impl<H: AxVCpuHal> VmxVCpu<H> {
    /// Whether the guest has interrupts enabled (`RFLAGS.IF`), while the vCPU is bound (its
    /// VMCS current on this CPU; `false` otherwise): a hypervisor tells a guest halted for
    /// good (`hlt` with interrupts off) from one waiting for an interrupt.
    pub fn interrupts_enabled(&self) -> bool {
        matches!(self.state, VmcsState::Active(_))
            && self.vmcs().read(crate::vmcs::guest::RFLAGS) & (1 << 9) != 0
    }

    /// `bind`: the guest's x87/SSE state and syscall MSRs into the CPU (the bare-metal host
    /// uses none of them).
    #[cfg(target_os = "none")]
    fn switch_in(&mut self) {
        axvcpu_x86::cpu::fxrstor(&self.fpu);
        for (msr, v) in crate::vmcs::SWITCHED_MSRS.iter().zip(self.syscall_msrs) {
            // SAFETY: the syscall MSRs exist on every x86-64 CPU; the host executes no
            // `syscall`/`sysret`/`swapgs`, so the guest's values cannot break it.
            unsafe { axvcpu_x86::cpu::wrmsr(*msr, v) };
        }
    }

    /// `unbind`: the guest's x87/SSE state and syscall MSRs out of the CPU.
    #[cfg(target_os = "none")]
    fn switch_out(&mut self) {
        axvcpu_x86::cpu::fxsave(&mut self.fpu);
        for (msr, v) in crate::vmcs::SWITCHED_MSRS
            .iter()
            .zip(self.syscall_msrs.iter_mut())
        {
            // SAFETY: the syscall MSRs exist on every x86-64 CPU; reading has no effect.
            *v = unsafe { axvcpu_x86::cpu::rdmsr(*msr) };
        }
    }

    /// The VMCS, for code that runs while it is current (`bind`, `run`; the tests' fake).
    #[inline]
    fn vmcs(&self) -> Vmcs {
        // SAFETY: called only from `bind` and `run` on the bound CPU after `vmptrld` (and in
        // the host tests, where the frame is this vCPU's fake VMCS).
        unsafe { Vmcs::current(H::phys_to_virt(self.vmcs).as_usize()) }
    }

    fn eptp(&self, c: &Controls) -> u64 {
        Ept::eptp(self.ept_root, c.ept_accessed_dirty)
    }

    fn npt(&self) -> Option<NptView<H, Ept>> {
        // SAFETY: `set_ept_root`'s contract: the table stays alive and its frames mapped
        // while the vCPU uses it.
        unsafe { NestedPageTable::<H, Ept>::from_root(self.ept_root) }.ok()
    }

    /// Fills the VMCS (current) for the guest `setup` described, with `controls`.
    fn init_vmcs(&mut self, controls: Controls) -> VCpuResult {
        let Some(start) = self.start else {
            return Err(VCpuError::bad_state("bind before setup"));
        };
        let v = self.vmcs();
        // SAFETY: the MSR bitmap is this vCPU's, all ones, freed only with the VMCS; the
        // EPT root came through `set_ept_root`, whose contract is the one required.
        unsafe { v.init_control(&controls, self.msr_bitmap, self.vpid, self.eptp(&controls)) };
        match start {
            Start::LongMode(boot, rsp) => {
                v.init_long_mode_guest(&controls, &boot, self.entry.as_usize() as u64, rsp)
            }
            Start::RealMode(cs) => v.init_real_mode_guest(&controls, cs),
        }
        self.controls = Some(controls);
        self.irq.proc_ctl = controls.proc;
        Ok(())
    }

    /// `GuestBoot::WriteTablesAt(at)`: writes the boot tables through the EPT.
    fn write_boot_tables(&self, at: u64) -> VCpuResult<LongModeBoot> {
        let size = long_mode_tables_size(0);
        let mut tables = alloc::vec![0u8; size];
        let boot = write_long_mode_tables(&mut tables, at, at)?;
        let npt = self
            .npt()
            .ok_or(VCpuError::bad_state("setup before set_ept_root"))?;
        // SAFETY: the table maps guest RAM the hypervisor keeps allocated for the vCPU's
        // life and reaches only through raw pointers (set_ept_root's contract).
        unsafe { npt.write_guest(GuestPhysAddr::from(at as usize), &tables) }?;
        Ok(boot)
    }
}

fn check_gpr(reg: usize) -> VCpuResult {
    if reg < gpr::COUNT {
        Ok(())
    } else {
        Err(VCpuError::invalid_input("x86 has GPRs 0..16").with_value(reg as u64))
    }
}

fn alloc_zeroed<H: AxVCpuHal>(fill: u8, what: &'static str) -> VCpuResult<HostPhysAddr> {
    let pa = H::alloc_frame().ok_or(VCpuError::new(AxErrorKind::NoMemory, what))?;
    let va = H::phys_to_virt(pa).as_usize() as *mut u8;
    // SAFETY: a frame just allocated, through the HAL's mapping.
    unsafe { core::ptr::write_bytes(va, fill, 4096) };
    Ok(pa)
}

impl<H: AxVCpuHal> AxArchVCpu for VmxVCpu<H> {
    type CreateConfig = ();
    type SetupConfig = VmxSetupConfig;
    type Hal = H;
    type Kicker = IpiKicker<LapicKick<H>>;

    fn new(vm_id: usize, vcpu_id: usize, _config: ()) -> VCpuResult<Self> {
        let vmcs = alloc_zeroed::<H>(0, "no frame for the VMCS")?;
        let msr_bitmap = match alloc_zeroed::<H>(0xff, "no frame for the MSR bitmap") {
            Ok(pa) => pa,
            Err(e) => {
                H::dealloc_frame(vmcs);
                return Err(e);
            }
        };
        let map = H::phys_to_virt(msr_bitmap).as_usize() as *mut u8;
        for msr in crate::vmcs::PASSTHROUGH_MSRS {
            if let Some((byte, bit)) = crate::vmcs::msr_bitmap_read_bit(msr) {
                for at in [byte, byte + 0x800] {
                    // SAFETY: `at` < 4 KiB, in the bitmap frame just allocated.
                    unsafe {
                        let p = map.add(at);
                        p.write(p.read() & !(1 << bit));
                    }
                }
            }
        }
        let tags = axvcpu::tlb_tags::tlb_tag_limit().min(0xffff) as u32;
        let vpid = 1 + (NEXT_VPID.fetch_add(1, Ordering::Relaxed) % tags) as u16;
        Ok(Self {
            vmcs,
            msr_bitmap,
            state: VmcsState::Fresh,
            launched: false,
            regs: Regs::default(),
            vm_id,
            vcpu_id,
            entry: GuestPhysAddr::from(0),
            ept_root: HostPhysAddr::from(0),
            vpid,
            start: None,
            controls: None,
            flush_tlb: true,
            kicker: IpiKicker::new(),
            irq: irq::Interrupts::default(),
            pending_read: None,
            msr_write_rip: None,
            icr: IcrDecoder::new(),
            fpu: axvcpu_x86::cpu::FxArea::initial(),
            syscall_msrs: [0; 5],
            pat: axvcpu_x86::msr::DEFAULT_PAT,
        })
    }

    fn set_entry(&mut self, entry: GuestPhysAddr) -> VCpuResult {
        self.entry = entry;
        self.regs.set_rip(entry.as_usize() as u64);
        Ok(())
    }

    unsafe fn set_ept_root(&mut self, ept_root: HostPhysAddr) -> VCpuResult {
        if ept_root.as_usize() & 0xfff != 0 {
            return Err(
                VCpuError::invalid_input("the EPT root must be 4 KiB aligned")
                    .with_value(ept_root.as_usize() as u64),
            );
        }
        self.ept_root = ept_root;
        Ok(())
    }

    fn setup(&mut self, config: VmxSetupConfig) -> VCpuResult {
        let boot = match config.boot {
            GuestBoot::Tables(boot) => boot,
            GuestBoot::WriteTablesAt(at) => self.write_boot_tables(at)?,
            // Unrestricted guest runs real mode as it is; `bind` refuses the start
            // (Unsupported) on a CPU without it.
            GuestBoot::RealMode => {
                let entry = self.entry.as_usize() as u64;
                let cs = axvcpu_x86::boot::sipi_code_segment(entry)?;
                self.start = Some(Start::RealMode(cs));
                self.regs.set(gpr::RSP, 0);
                self.regs.set_rip(0);
                return Ok(());
            }
        };
        let rsp = config.rsp_of(self.vcpu_id);
        self.start = Some(Start::LongMode(boot, rsp));
        self.regs.set(gpr::RSP, rsp);
        self.regs.set_rip(self.entry.as_usize() as u64);
        Ok(())
    }

    fn run(&mut self) -> VCpuResult<AxVCpuExitReason> {
        match self.enter()? {
            irq::Entered::Kicked => Ok(AxVCpuExitReason::Kicked),
            irq::Entered::Failed(reason) => Ok(AxVCpuExitReason::FailEntry {
                hardware_entry_failure_reason: reason,
            }),
            irq::Entered::Exited => self.decode_exit(),
        }
    }

    fn bind(&mut self) -> VCpuResult {
        self.load()?;
        #[cfg(target_os = "none")]
        self.switch_in();
        self.kicker.bind_to(H::current_cpu_id());
        Ok(())
    }

    fn unbind(&mut self) -> VCpuResult {
        #[cfg(target_os = "none")]
        self.switch_out();
        self.kicker.unbind();
        self.clear()
    }

    fn set_gpr(&mut self, reg: usize, val: usize) -> VCpuResult {
        check_gpr(reg)?;
        self.regs.set(reg, val as u64);
        Ok(())
    }

    fn get_gpr(&self, reg: usize) -> VCpuResult<usize> {
        check_gpr(reg)?;
        Ok(self.regs.get(reg) as usize)
    }

    fn pc(&self) -> usize {
        self.regs.rip as usize
    }

    fn set_pc(&mut self, pc: usize) -> VCpuResult {
        self.regs.set_rip(pc as u64);
        Ok(())
    }

    fn set_return_value(&mut self, val: usize) {
        self.regs.set(gpr::RAX, val as u64);
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
        if let Some((after, len)) = self.msr_write_rip.take() {
            if self.regs.rip == after {
                self.regs.set_rip(after.wrapping_sub(len));
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

impl<H: AxVCpuHal> Drop for VmxVCpu<H> {
    fn drop(&mut self) {
        if let VmcsState::Active(cpu) = self.state {
            if cpu != H::current_cpu_id() || self.clear().is_err() {
                // Still active on another CPU, which may write it back at any time: leak
                // the frame rather than hand it out again.
                H::dealloc_frame(self.msr_bitmap);
                return;
            }
        }
        H::dealloc_frame(self.vmcs);
        H::dealloc_frame(self.msr_bitmap);
    }
}
