//! [`RiscvVCpu`]: one VS-mode virtual hart.

use alloc::sync::Arc;
use core::marker::PhantomData;
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use axvcpu::{
    AccessFlags, AccessWidth, AxArchVCpu, AxVCpuExitReason, AxVCpuHal, GuestPhysAddr, HostPhysAddr,
    SysRegAddr, VCpuError, VCpuKick, VCpuResult,
};

use crate::csr::{self, hstatus, irq, num, sstatus};
use crate::decode::{self, CsrInsn, CsrSrc, Htinst, MemInsn};
use crate::gstage::{self, pte, GStageMode, Walk};
use crate::hw;
use crate::sbi::{self, SbiCall};
use crate::switch::{self, Regs};

/// `scause` interrupt bit.
const INTERRUPT: u64 = 1 << 63;
/// Exception codes the backend handles.
mod exc {
    pub const VS_ECALL: u64 = 10;
    pub const INSN_GUEST_PAGE_FAULT: u64 = 20;
    pub const LOAD_GUEST_PAGE_FAULT: u64 = 21;
    pub const VIRTUAL_INSTRUCTION: u64 = 22;
    pub const STORE_GUEST_PAGE_FAULT: u64 = 23;
}

/// Per-vCPU options for [`RiscvVCpu::setup`](AxArchVCpu::setup).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RiscvSetupConfig {
    /// The format of the G-stage table given to `set_ept_root`. It must be one `hgatp`
    /// accepts ([`supports`](crate::supports)); `setup` checks.
    pub gstage: GStageMode,
    /// Sets `hstatus.VTVM`: the guest's `satp` accesses and `sfence.vma` trap. `satp`
    /// accesses become [`SysRegRead`](AxVCpuExitReason::SysRegRead) /
    /// [`SysRegWrite`](AxVCpuExitReason::SysRegWrite) exits (the hypervisor emulates
    /// them); `sfence.vma` is done by the backend (`hfence.vvma`).
    pub trap_satp: bool,
    /// Decodes MMIO accesses from the transformed instruction in `htinst` when the hardware
    /// provides one (the default). `false` reads the instruction from guest memory with
    /// HLVX instead, for hardware whose transformed instructions cannot be trusted (and to
    /// test that path); `htinst`'s page-table-walk markers are honoured either way.
    pub use_htinst: bool,
}

impl Default for RiscvSetupConfig {
    fn default() -> Self {
        Self {
            gstage: GStageMode::Sv39x4,
            trap_satp: false,
            use_htinst: true,
        }
    }
}

/// The kick of one vCPU: a flag and the hart it is bound to.
#[derive(Debug)]
struct KickState {
    flag: AtomicBool,
    hart: AtomicUsize,
}

const NO_HART: usize = usize::MAX;

/// Kicks a [`RiscvVCpu`]: sets its flag and sends a supervisor software interrupt (SBI IPI)
/// to the hart it is bound to. The run loop checks the flag with interrupts disabled just
/// before `sret`; an IPI that arrives after that check makes the guest trap at once.
#[derive(Debug, Clone)]
pub struct RiscvKicker(Arc<KickState>);

impl VCpuKick for RiscvKicker {
    fn kick(&self) {
        self.0.flag.store(true, Ordering::SeqCst);
        let hart = self.0.hart.load(Ordering::SeqCst);
        if hart != NO_HART {
            hw::send_ipi(hart);
        }
    }
}

/// The VS-level CSRs of a vCPU, live in the hart while it is bound.
#[derive(Debug, Default, Clone, Copy)]
struct VsCsrs {
    vsstatus: u64,
    vsie: u64,
    vstvec: u64,
    vsscratch: u64,
    vsepc: u64,
    vscause: u64,
    vstval: u64,
    vsatp: u64,
    vstimecmp: u64,
}

impl VsCsrs {
    fn load(&self) {
        csr::write::<{ num::VSSTATUS }>(self.vsstatus);
        csr::write::<{ num::VSIE }>(self.vsie);
        csr::write::<{ num::VSTVEC }>(self.vstvec);
        csr::write::<{ num::VSSCRATCH }>(self.vsscratch);
        csr::write::<{ num::VSEPC }>(self.vsepc);
        csr::write::<{ num::VSCAUSE }>(self.vscause);
        csr::write::<{ num::VSTVAL }>(self.vstval);
        csr::write::<{ num::VSATP }>(self.vsatp);
        if hw::has_sstc() {
            csr::write::<{ num::VSTIMECMP }>(self.vstimecmp);
        }
    }

    fn save(&mut self) {
        self.vsstatus = csr::read::<{ num::VSSTATUS }>();
        self.vsie = csr::read::<{ num::VSIE }>();
        self.vstvec = csr::read::<{ num::VSTVEC }>();
        self.vsscratch = csr::read::<{ num::VSSCRATCH }>();
        self.vsepc = csr::read::<{ num::VSEPC }>();
        self.vscause = csr::read::<{ num::VSCAUSE }>();
        self.vstval = csr::read::<{ num::VSTVAL }>();
        self.vsatp = csr::read::<{ num::VSATP }>();
        if hw::has_sstc() {
            self.vstimecmp = csr::read::<{ num::VSTIMECMP }>();
        }
    }
}

/// A read exit waiting for `complete_read`.
#[derive(Debug, Clone, Copy)]
enum PendingRead {
    Mmio(MemInsn),
    Csr(CsrInsn, u64),
}

/// A RISC-V H-extension vCPU: the guest runs in VS-mode, translated by the G-stage table
/// given to `set_ept_root`.
///
/// Interrupt injection: `inject_interrupt(v)` takes the guest-visible interrupt code
/// (1 software, 5 timer, 9 external) and raises `hvip.VSSIP`/`VSTIP`/`VSEIP`. Each stays
/// pending until the guest acknowledges it, then is gone, so it is delivered once:
/// - software (1): the guest clears `sip.SSIP` (an alias of `hvip.VSSIP`); the backend
///   reads `hvip` back after every exit, so its pending set follows the guest's ack;
/// - timer (5): cleared when the guest programs its timer (SBI `set_timer`);
/// - external (9): cleared by the hypervisor's interrupt-controller model through
///   [`RiscvVCpu::clear_external_interrupt`] (the guest's claim), since no CSR of the guest
///   acknowledges it.
///
/// The guest's timer: with Sstc, SBI `set_timer` writes `vstimecmp` and the hardware raises
/// the guest's timer interrupt; without it, the backend arms the host timer through SBI and
/// turns its expiry into `VSTIP`.
///
/// Floating point is not virtualised: the guest runs with `sstatus.FS` = Off, so its FP
/// instructions raise illegal-instruction exceptions (delegated to the guest).
#[derive(Debug)]
pub struct RiscvVCpu<H: AxVCpuHal> {
    regs: Regs,
    vs: VsCsrs,
    vm_id: usize,
    vcpu_id: usize,
    ept_root: u64,
    hgatp: u64,
    config: RiscvSetupConfig,
    /// Injected interrupts not yet acknowledged (`hvip` bits).
    pending_irqs: u64,
    kick: Arc<KickState>,
    pending_read: Option<PendingRead>,
    /// The write half of a `csrrw`/`csrrs`/`csrrc` whose read half was answered.
    deferred_write: Option<(u16, u64)>,
    flush_gstage: bool,
    bound: bool,
    /// The host timer is armed for the guest (no Sstc).
    guest_timer_armed: bool,
    _hal: PhantomData<fn() -> H>,
}

/// The exceptions the guest handles itself (`hedeleg`): misaligned fetch (0), illegal
/// instruction (2), breakpoint (3), misaligned load (4) and store (6), U-mode ecall (8),
/// and the guest's own page faults (12, 13, 15).
pub(crate) const HEDELEG: u64 = (1 << 0)
    | (1 << 2)
    | (1 << 3)
    | (1 << 4)
    | (1 << 6)
    | (1 << 8)
    | (1 << 12)
    | (1 << 13)
    | (1 << 15);

fn vector_bit(vector: usize) -> VCpuResult<u64> {
    match vector {
        1 => Ok(irq::VSSIP),
        5 => Ok(irq::VSTIP),
        9 => Ok(irq::VSEIP),
        _ => Err(VCpuError::invalid_input(
            "RISC-V injects interrupt codes 1 (software), 5 (timer) or 9 (external)",
        )
        .with_value(vector as u64)),
    }
}

impl<H: AxVCpuHal> RiscvVCpu<H> {
    /// Clears an injected external interrupt (`hvip.VSEIP`): the guest claimed it from the
    /// hypervisor's interrupt-controller model.
    pub fn clear_external_interrupt(&mut self) {
        self.pending_irqs &= !irq::VSEIP;
    }

    /// The interrupts injected and not yet acknowledged, as guest interrupt codes bits
    /// (`1 << 1` software, `1 << 5` timer, `1 << 9` external).
    pub fn pending_interrupts(&self) -> u64 {
        self.pending_irqs >> 1
    }

    fn gpr(&self, r: usize) -> u64 {
        if r == 0 {
            0
        } else {
            self.regs.guest_gpr[r & 31]
        }
    }

    fn set_reg(&mut self, r: usize, v: u64) {
        if r != 0 {
            self.regs.guest_gpr[r & 31] = v;
        }
    }

    fn walk(&self, gpa: u64) -> Walk {
        gstage::walk(self.config.gstage, self.ept_root, gpa, |pa| {
            let va = H::phys_to_virt(HostPhysAddr::from(pa as usize)).as_usize();
            // SAFETY: the hypervisor built the table in HAL frames reachable through
            // phys_to_virt; entries are 8-byte aligned.
            unsafe { (va as *const u64).read_volatile() }
        })
    }

    /// Reads the guest instruction at its `sepc` (16 or 32 bits) with HLVX.
    fn fetch_insn(&self) -> VCpuResult<u32> {
        let pc = self.regs.guest_sepc;
        let hs = self.regs.guest_hstatus;
        let lo = switch::read_guest_u16(pc, hs).map_err(|c| {
            VCpuError::unsupported("cannot read the guest instruction that trapped").with_value(c)
        })?;
        if decode::insn_len(lo) == 2 {
            return Ok(lo as u32);
        }
        let hi = switch::read_guest_u16(pc.wrapping_add(2), hs).map_err(|c| {
            VCpuError::unsupported("cannot read the guest instruction that trapped").with_value(c)
        })?;
        Ok(lo as u32 | (hi as u32) << 16)
    }

    fn advance(&mut self, len: usize) {
        self.regs.guest_sepc = self.regs.guest_sepc.wrapping_add(len as u64);
    }

    /// Handles the trap the world switch saved.
    fn handle_exit(&mut self) -> VCpuResult<AxVCpuExitReason> {
        let scause = self.regs.trap_scause;
        if scause & INTERRUPT != 0 {
            return Ok(self.handle_host_interrupt(scause & !INTERRUPT));
        }
        let gpa = (self.regs.trap_htval << 2) | (self.regs.trap_stval & 3);
        match scause {
            exc::VS_ECALL => Ok(self.handle_ecall()),
            exc::INSN_GUEST_PAGE_FAULT => Ok(AxVCpuExitReason::NestedPageFault {
                addr: GuestPhysAddr::from(gpa as usize),
                access_flags: AccessFlags::EXECUTE,
            }),
            exc::LOAD_GUEST_PAGE_FAULT | exc::STORE_GUEST_PAGE_FAULT => {
                self.handle_guest_page_fault(gpa, scause == exc::STORE_GUEST_PAGE_FAULT)
            }
            exc::VIRTUAL_INSTRUCTION => self.handle_virtual_instruction(),
            _ => Err(VCpuError::unsupported("unexpected guest trap (scause)").with_value(scause)),
        }
    }

    fn handle_host_interrupt(&mut self, code: u64) -> AxVCpuExitReason {
        match code {
            1 => {
                // Supervisor software interrupt: a kick (or a stale one; the core absorbs
                // a Kicked it did not ask for).
                csr::clear::<{ num::SIP }>(irq::SSIP);
                self.kick.flag.store(false, Ordering::SeqCst);
                AxVCpuExitReason::Kicked
            }
            5 if self.guest_timer_armed => {
                hw::set_host_timer(u64::MAX);
                csr::clear::<{ num::SIE }>(irq::STIP);
                self.guest_timer_armed = false;
                self.pending_irqs |= irq::VSTIP;
                AxVCpuExitReason::Nothing
            }
            code => {
                H::irq_handler();
                AxVCpuExitReason::ExternalInterrupt { vector: code }
            }
        }
    }

    fn handle_ecall(&mut self) -> AxVCpuExitReason {
        self.advance(4);
        let mut a = [0u64; 8];
        a.copy_from_slice(&self.regs.guest_gpr[10..18]);
        let ok = |s: &mut Self| s.regs.guest_gpr[10] = sbi::err::SUCCESS as u64;
        match sbi::classify(&a) {
            SbiCall::Hypercall { nr, args } => {
                ok(self);
                AxVCpuExitReason::Hypercall { nr, args }
            }
            SbiCall::HartStart {
                hartid,
                start_addr,
                opaque,
            } => {
                ok(self);
                AxVCpuExitReason::CpuUp {
                    target_cpu: hartid,
                    entry_point: GuestPhysAddr::from(start_addr as usize),
                    arg: opaque,
                }
            }
            SbiCall::HartStop => {
                ok(self);
                AxVCpuExitReason::CpuDown { state: 0 }
            }
            SbiCall::SystemReset { .. } => {
                ok(self);
                AxVCpuExitReason::SystemDown
            }
            SbiCall::PutChar(c) => {
                hw::sbi_call(sbi::eid::LEGACY_PUTCHAR, 0, c as u64, 0, 0);
                ok(self);
                AxVCpuExitReason::Nothing
            }
            SbiCall::GetChar => {
                let (r, _) = hw::sbi_call(sbi::eid::LEGACY_GETCHAR, 0, 0, 0, 0);
                self.regs.guest_gpr[10] = r as u64;
                AxVCpuExitReason::Nothing
            }
            SbiCall::SetTimer { stime, .. } => {
                self.pending_irqs &= !irq::VSTIP;
                if hw::has_sstc() {
                    csr::write::<{ num::VSTIMECMP }>(stime);
                } else {
                    hw::set_host_timer(stime);
                    csr::set::<{ num::SIE }>(irq::STIP);
                    self.guest_timer_armed = true;
                }
                ok(self);
                AxVCpuExitReason::Nothing
            }
            SbiCall::SendIpi { mask, base } => {
                ok(self);
                let me = self.vcpu_id as u64;
                let to_self = base != u64::MAX
                    && me >= base
                    && me - base < 64
                    && (mask >> (me - base)) & 1 != 0;
                AxVCpuExitReason::SendIPI {
                    target_cpu: mask,
                    target_cpu_aux: base,
                    send_to_all: base == u64::MAX,
                    send_to_self: to_self,
                    vector: 1,
                }
            }
            SbiCall::Base { fid, arg } => {
                let (e, v) = sbi::base(fid, arg);
                self.regs.guest_gpr[10] = e as u64;
                self.regs.guest_gpr[11] = v;
                AxVCpuExitReason::Nothing
            }
            SbiCall::Unsupported { .. } => {
                self.regs.guest_gpr[10] = sbi::err::NOT_SUPPORTED as u64;
                AxVCpuExitReason::Nothing
            }
        }
    }

    fn handle_guest_page_fault(&mut self, gpa: u64, store: bool) -> VCpuResult<AxVCpuExitReason> {
        let access = if store {
            AccessFlags::WRITE
        } else {
            AccessFlags::READ
        };
        let addr = GuestPhysAddr::from(gpa as usize);
        let insn = match decode::classify_htinst(self.regs.trap_htinst) {
            Htinst::PageTableWalk { write } => {
                // The guest's own page-table walk touched memory the G-stage does not
                // allow: not an instruction the backend can emulate.
                let access_flags = if write {
                    AccessFlags::WRITE
                } else {
                    AccessFlags::READ
                };
                return Ok(AxVCpuExitReason::NestedPageFault { addr, access_flags });
            }
            Htinst::Transformed(t) if self.config.use_htinst => decode::decode_transformed(t),
            Htinst::Transformed(_) => None,
            Htinst::None => None,
            Htinst::Unknown(v) => {
                return Err(
                    VCpuError::unsupported("unrecognised htinst at a guest page fault")
                        .with_value(v),
                )
            }
        };
        if let Walk::Mapped { flags, .. } = self.walk(gpa) {
            let needed = if store { pte::W } else { pte::R };
            if flags & needed != 0 && flags & pte::U != 0 {
                // Allowed by the table: a stale translation. Flush and retry.
                self.flush_gstage = true;
                return Ok(AxVCpuExitReason::Nothing);
            }
            return Ok(AxVCpuExitReason::NestedPageFault {
                addr,
                access_flags: access,
            });
        }
        let m = match insn {
            Some(m) => m,
            None => {
                let raw = self.fetch_insn()?;
                decode::decode_mem(raw).ok_or(
                    VCpuError::unsupported(
                        "guest accessed unmapped memory with an instruction the backend does not emulate",
                    )
                    .with_value(raw as u64),
                )?
            }
        };
        if m.is_load == store {
            return Err(VCpuError::unsupported(
                "guest page fault kind does not match the faulting instruction",
            )
            .with_value(self.regs.trap_scause));
        }
        if m.is_load {
            self.pending_read = Some(PendingRead::Mmio(m));
            Ok(AxVCpuExitReason::MmioRead {
                addr,
                width: m.width,
                reg: Some(m.reg),
                reg_width: AccessWidth::Qword,
                signed_ext: m.signed,
            })
        } else {
            let data = self.gpr(m.reg) & m.width.mask();
            self.advance(m.len);
            Ok(AxVCpuExitReason::MmioWrite {
                addr,
                width: m.width,
                data,
            })
        }
    }

    fn handle_virtual_instruction(&mut self) -> VCpuResult<AxVCpuExitReason> {
        let insn = match self.regs.trap_stval {
            0 => self.fetch_insn()?,
            v => v as u32,
        };
        if insn == decode::WFI {
            self.advance(4);
            return Ok(AxVCpuExitReason::Halt);
        }
        if decode::is_sfence_vma(insn) {
            csr::hfence_vvma_all();
            self.advance(4);
            return Ok(AxVCpuExitReason::Nothing);
        }
        let Some(c) = decode::decode_csr(insn) else {
            return Err(VCpuError::unsupported(
                "virtual-instruction exception on an instruction the backend does not emulate",
            )
            .with_value(insn as u64));
        };
        let operand = match c.src {
            CsrSrc::Reg(r) => self.gpr(r),
            CsrSrc::Imm(v) => v,
        };
        let addr = SysRegAddr(c.csr as usize);
        if c.reads() {
            self.pending_read = Some(PendingRead::Csr(c, operand));
            Ok(AxVCpuExitReason::SysRegRead { addr, reg: c.rd })
        } else {
            self.advance(4);
            Ok(AxVCpuExitReason::SysRegWrite {
                addr,
                value: operand,
            })
        }
    }

    fn enter(&mut self) -> VCpuResult<AxVCpuExitReason> {
        // Interrupts off from the kick check to the guest entry: an IPI arriving in between
        // stays pending in sip and makes the guest trap at once.
        let sie = csr::clear::<{ num::SSTATUS }>(sstatus::SIE) & sstatus::SIE;
        if self.kick.flag.swap(false, Ordering::SeqCst) {
            csr::set::<{ num::SSTATUS }>(sie);
            return Ok(AxVCpuExitReason::Kicked);
        }
        if self.flush_gstage {
            csr::hfence_gvma_all();
            self.flush_gstage = false;
        }
        csr::write::<{ num::HVIP }>(self.pending_irqs);
        // SAFETY: `regs` is ours for the duration of the call; the asm restores every
        // callee-saved register and the CSRs it changes.
        unsafe { switch::axvcpu_riscv_run_guest(&mut self.regs) };
        // The guest may have acknowledged a software interrupt (sip.SSIP aliases VSSIP).
        self.pending_irqs = csr::read::<{ num::HVIP }>() & irq::VS_ALL;
        csr::set::<{ num::SSTATUS }>(sie);
        self.handle_exit()
    }
}

impl<H: AxVCpuHal> AxArchVCpu for RiscvVCpu<H> {
    type CreateConfig = ();
    type SetupConfig = RiscvSetupConfig;
    type Hal = H;
    type Kicker = RiscvKicker;

    fn new(vm_id: usize, vcpu_id: usize, _config: ()) -> VCpuResult<Self> {
        Ok(Self {
            regs: Regs::default(),
            vs: VsCsrs::default(),
            vm_id,
            vcpu_id,
            ept_root: 0,
            hgatp: 0,
            config: RiscvSetupConfig::default(),
            pending_irqs: 0,
            kick: Arc::new(KickState {
                flag: AtomicBool::new(false),
                hart: AtomicUsize::new(NO_HART),
            }),
            pending_read: None,
            deferred_write: None,
            flush_gstage: true,
            bound: false,
            guest_timer_armed: false,
            _hal: PhantomData,
        })
    }

    fn set_entry(&mut self, entry: GuestPhysAddr) -> VCpuResult {
        self.regs.guest_sepc = entry.as_usize() as u64;
        Ok(())
    }

    fn set_ept_root(&mut self, ept_root: HostPhysAddr) -> VCpuResult {
        let root = ept_root.as_usize() as u64;
        if root & 0x3fff != 0 {
            return Err(VCpuError::invalid_input(
                "the G-stage root must be 16 KiB aligned (x4 root table)",
            )
            .with_value(root));
        }
        self.ept_root = root;
        Ok(())
    }

    fn setup(&mut self, config: RiscvSetupConfig) -> VCpuResult {
        if !hw::probed() {
            return Err(VCpuError::bad_state(
                "setup: hardware_enable has not run on any hart (the backend probes hgatp there)",
            ));
        }
        if !hw::supports(config.gstage) {
            return Err(
                VCpuError::unsupported("hgatp does not support this G-stage mode")
                    .with_value(config.gstage.hgatp_mode()),
            );
        }
        self.config = config;
        let vmid = (self.vm_id as u64) & hw::vmid_mask();
        self.hgatp = (config.gstage.hgatp_mode() << hw::HGATP_MODE_SHIFT)
            | (vmid << hw::HGATP_VMID_SHIFT)
            | (self.ept_root >> 12);
        // Guest enters VS-mode (SPP = S) with FP off and HS interrupts as the hart has them.
        self.regs.guest_sstatus = sstatus::SPP;
        let host_hstatus = csr::read::<{ num::HSTATUS }>();
        let keep = !(hstatus::GVA
            | hstatus::SPV
            | hstatus::SPVP
            | hstatus::HU
            | hstatus::VGEIN
            | hstatus::VTVM
            | hstatus::VTW
            | hstatus::VTSR);
        self.regs.guest_hstatus = (host_hstatus & keep)
            | hstatus::SPV
            | hstatus::SPVP
            | hstatus::VTW
            | if config.trap_satp { hstatus::VTVM } else { 0 };
        self.regs.guest_gpr[10] = self.vcpu_id as u64; // a0 = hart id
        self.vs.vstimecmp = u64::MAX;
        self.flush_gstage = true;
        Ok(())
    }

    #[inline(always)]
    fn run(&mut self) -> VCpuResult<AxVCpuExitReason> {
        if let Some((csr, value)) = self.deferred_write.take() {
            return Ok(AxVCpuExitReason::SysRegWrite {
                addr: SysRegAddr(csr as usize),
                value,
            });
        }
        if !self.bound {
            return Err(VCpuError::bad_state(
                "run: the vCPU is not bound to this hart",
            ));
        }
        self.enter()
    }

    fn bind(&mut self) -> VCpuResult {
        csr::write::<{ num::HGATP }>(self.hgatp);
        csr::hfence_gvma_all();
        self.vs.load();
        csr::write::<{ num::HVIP }>(self.pending_irqs);
        self.kick.hart.store(H::current_cpu_id(), Ordering::SeqCst);
        self.flush_gstage = false;
        self.bound = true;
        Ok(())
    }

    fn unbind(&mut self) -> VCpuResult {
        self.kick.hart.store(NO_HART, Ordering::SeqCst);
        self.vs.save();
        if hw::has_sstc() {
            csr::write::<{ num::VSTIMECMP }>(u64::MAX);
        }
        if self.guest_timer_armed {
            hw::set_host_timer(u64::MAX);
            csr::clear::<{ num::SIE }>(irq::STIP);
            self.guest_timer_armed = false;
        }
        csr::write::<{ num::HVIP }>(0);
        csr::write::<{ num::HGATP }>(0);
        self.bound = false;
        Ok(())
    }

    fn set_gpr(&mut self, reg: usize, val: usize) -> VCpuResult {
        if reg >= 32 {
            return Err(
                VCpuError::invalid_input("RISC-V has registers x0..x31").with_value(reg as u64)
            );
        }
        self.set_reg(reg, val as u64);
        Ok(())
    }

    fn get_gpr(&self, reg: usize) -> VCpuResult<usize> {
        if reg >= 32 {
            return Err(
                VCpuError::invalid_input("RISC-V has registers x0..x31").with_value(reg as u64)
            );
        }
        Ok(self.gpr(reg) as usize)
    }

    fn pc(&self) -> usize {
        self.regs.guest_sepc as usize
    }

    fn set_pc(&mut self, pc: usize) -> VCpuResult {
        self.regs.guest_sepc = pc as u64;
        Ok(())
    }

    fn set_return_value(&mut self, val: usize) {
        self.regs.guest_gpr[11] = val as u64;
    }

    fn set_boot_arg(&mut self, arg: usize) -> VCpuResult {
        self.regs.guest_gpr[11] = arg as u64;
        Ok(())
    }

    fn complete_read(&mut self, value: u64) -> VCpuResult {
        match self.pending_read.take() {
            Some(PendingRead::Mmio(m)) => {
                let v = if m.signed {
                    m.width.sign_extend(value)
                } else {
                    value & m.width.mask()
                };
                self.set_reg(m.reg, v);
                self.advance(m.len);
                Ok(())
            }
            Some(PendingRead::Csr(c, operand)) => {
                self.set_reg(c.rd, value);
                if c.writes() {
                    self.deferred_write = Some((c.csr, c.new_value(value, operand)));
                }
                self.advance(4);
                Ok(())
            }
            None => Err(VCpuError::bad_state(
                "complete_read: no read exit is waiting",
            )),
        }
    }

    fn inject_interrupt(&mut self, vector: usize) -> VCpuResult {
        self.pending_irqs |= vector_bit(vector)?;
        Ok(())
    }

    fn has_pending_interrupt(&self) -> bool {
        self.pending_irqs != 0
    }

    fn check_interrupt_vector(vector: usize) -> VCpuResult {
        vector_bit(vector).map(drop)
    }

    fn kicker(&self) -> RiscvKicker {
        RiscvKicker(self.kick.clone())
    }

    fn nested_page_table_changed(&mut self) -> VCpuResult {
        self.flush_gstage = true;
        Ok(())
    }
}
