//! Exit decoding: turns the trap the world switch saved (`scause`, `stval`, `htval`,
//! `htinst`) into an exit reason, `Nothing` when it was handled here (the core then enters
//! the guest again; the hypervisor never sees it), or an error naming what the guest did.
//!
//! Every `scause` has a defined outcome. Interrupts: see `irq.rs`. Exceptions:
//!
//! | `scause` | outcome |
//! |---|---|
//! | 10 VS-mode `ecall` | SBI call: an exit, or answered here (`Nothing`) |
//! | 20 instruction guest-page fault | `NestedPageFault{EXECUTE}` |
//! | 21 / 23 load / store guest-page fault | `MmioRead` / `MmioWrite`, `NestedPageFault`, or `Nothing` (stale TLB, retried once) |
//! | 22 virtual instruction | `Halt` (`wfi`), `Nothing` (`sfence.vma`), `SysRegRead` / `SysRegWrite` (`csrr*`), `Nothing` with an illegal-instruction exception raised in the guest (anything else: `hfence.*`, `hlv`/`hsv`, ...) |
//! | 1 / 5 / 7 access faults | `Err`, value `stval` (the address) |
//! | 0, 2, 3, 4, 6, 8, 12, 13, 15 (delegated by `hedeleg`) | `Err`, value `scause`: this hart's delegation is not set up |
//! | anything else | `Err`, value `scause` |

use axvcpu::{
    AccessFlags, AccessWidth, AxVCpuExitReason, AxVCpuHal, GuestPhysAddr, SysRegAddr, VCpuError,
    VCpuResult,
};
use axvcpu_npt::MapFlags;

use super::RiscvVCpu;
use crate::decode::{self, CsrInsn, CsrSrc, Htinst, MemInsn};
use crate::hw::{self, num, sstatus};
use crate::sbi::{self, SbiCall};

/// `scause` interrupt bit.
const INTERRUPT: u64 = 1 << 63;
/// The page size MMIO accesses may not cross.
const PAGE: u64 = 0x1000;

/// Exception codes (privileged specification, `scause`).
mod exc {
    pub const INSN_ACCESS_FAULT: u64 = 1;
    pub const LOAD_ACCESS_FAULT: u64 = 5;
    pub const STORE_ACCESS_FAULT: u64 = 7;
    pub const VS_ECALL: u64 = 10;
    pub const INSN_GUEST_PAGE_FAULT: u64 = 20;
    pub const LOAD_GUEST_PAGE_FAULT: u64 = 21;
    pub const VIRTUAL_INSTRUCTION: u64 = 22;
    pub const STORE_GUEST_PAGE_FAULT: u64 = 23;
}

/// The error for a guest trap the backend does not turn into an exit.
fn unhandled_trap(scause: u64, stval: u64) -> VCpuError {
    let (reason, value) = match scause {
        exc::INSN_ACCESS_FAULT => (
            "guest instruction access fault: PMP or no memory behind a G-stage mapping (value: stval, the address)",
            stval,
        ),
        exc::LOAD_ACCESS_FAULT => (
            "guest load access fault: PMP or no memory behind a G-stage mapping (value: stval, the address)",
            stval,
        ),
        exc::STORE_ACCESS_FAULT => (
            "guest store/AMO access fault: PMP or no memory behind a G-stage mapping (value: stval, the address)",
            stval,
        ),
        c if c < 64 && crate::vcpu::HEDELEG & (1 << c) != 0 => (
            "a guest exception hedeleg gives the guest reached the hypervisor: hardware_enable has not run on this hart (value: scause)",
            scause,
        ),
        _ => ("unexpected guest trap (value: scause)", scause),
    };
    VCpuError::unsupported(reason).with_value(value)
}

/// A read exit waiting for `complete_read`.
#[derive(Debug, Clone, Copy)]
pub(super) enum PendingRead {
    Mmio(MemInsn),
    /// The CSR instruction and the value of its source operand when it trapped.
    Csr(CsrInsn, u64),
}

/// The instruction the guest trapped on could not be read (see `fetch_insn`).
enum Fetch {
    Insn(u32),
    /// Reading it faulted: the guest's memory changed since it ran the instruction.
    Faulted,
}

impl<H: AxVCpuHal> RiscvVCpu<H> {
    /// Handles the trap the world switch saved.
    pub(super) fn handle_exit(&mut self) -> VCpuResult<AxVCpuExitReason> {
        let retried = self.stale_retry.take();
        let scause = self.regs.trap_scause;
        if scause & INTERRUPT != 0 {
            return Ok(self.handle_host_interrupt(scause & !INTERRUPT));
        }
        match scause {
            exc::VS_ECALL => Ok(self.handle_ecall()),
            exc::INSN_GUEST_PAGE_FAULT => Ok(AxVCpuExitReason::NestedPageFault {
                addr: GuestPhysAddr::from(self.fault_gpa() as usize),
                access_flags: AccessFlags::EXECUTE,
            }),
            exc::LOAD_GUEST_PAGE_FAULT | exc::STORE_GUEST_PAGE_FAULT => {
                self.handle_guest_page_fault(scause == exc::STORE_GUEST_PAGE_FAULT, retried)
            }
            exc::VIRTUAL_INSTRUCTION => self.handle_virtual_instruction(),
            _ => Err(unhandled_trap(scause, self.regs.trap_stval)),
        }
    }

    /// The guest-physical address of a guest-page fault. `htval` holds it shifted right by
    /// 2 (the low bits come from `stval`); an implementation may leave `htval` 0 instead,
    /// and then the address is `stval` itself when VS-stage translation is off.
    fn fault_gpa(&self) -> u64 {
        let (htval, stval) = (self.regs.trap_htval, self.regs.trap_stval);
        if htval == 0 && hw::read::<{ num::VSATP }>() >> 60 == 0 {
            return stval;
        }
        (htval << 2) | (stval & 3)
    }

    /// Reads the guest instruction at its `sepc` (16 or 32 bits) with HLVX. A fault here
    /// means the guest's memory changed since it ran the instruction (another vCPU, or a
    /// VS-stage mapping changed without `sfence.vma`).
    fn fetch_insn(&self) -> Fetch {
        let pc = self.regs.guest_sepc;
        let hs = self.regs.guest_hstatus;
        let Ok(lo) = crate::switch::read_guest_u16(pc, hs) else {
            return Fetch::Faulted;
        };
        if decode::insn_len(lo) == 2 {
            return Fetch::Insn(lo as u32);
        }
        match crate::switch::read_guest_u16(pc.wrapping_add(2), hs) {
            Ok(hi) => Fetch::Insn(lo as u32 | (hi as u32) << 16),
            Err(_) => Fetch::Faulted,
        }
    }

    fn advance(&mut self, len: usize) {
        self.regs.guest_sepc = self.regs.guest_sepc.wrapping_add(len as u64);
    }

    fn handle_ecall(&mut self) -> AxVCpuExitReason {
        // `ecall` has no compressed form.
        self.advance(4);
        // The hypercall extension first, and the SBI proper out of line: a hypercall round
        // trip then pays for neither the other calls' decoding nor their register pressure.
        if self.regs.gpr(17) == axvcpu::RISCV_HYPERCALL_EXT {
            let nr = self.regs.gpr(16);
            let args = core::array::from_fn(|i| self.regs.gpr(10 + i));
            self.regs.set_gpr(10, sbi::err::SUCCESS as u64);
            return AxVCpuExitReason::Hypercall { nr, args };
        }
        self.handle_sbi()
    }

    #[inline(never)]
    fn handle_sbi(&mut self) -> AxVCpuExitReason {
        let a = core::array::from_fn(|i| self.regs.gpr(10 + i));
        let (a0, a1) = (10, 11);
        let answer = |s: &mut Self, err: i64| s.regs.set_gpr(a0, err as u64);
        match sbi::classify(&a) {
            SbiCall::Hypercall { nr, args } => {
                answer(self, sbi::err::SUCCESS);
                AxVCpuExitReason::Hypercall { nr, args }
            }
            SbiCall::HartStart {
                hartid,
                start_addr,
                opaque,
            } => {
                answer(self, sbi::err::SUCCESS);
                AxVCpuExitReason::CpuUp {
                    target_cpu: hartid,
                    entry_point: GuestPhysAddr::from(start_addr as usize),
                    arg: opaque,
                }
            }
            SbiCall::HartStop => {
                answer(self, sbi::err::SUCCESS);
                self.reset_for_restart();
                AxVCpuExitReason::CpuDown { state: 0 }
            }
            SbiCall::HartStatus { hartid } => {
                answer(self, sbi::err::SUCCESS);
                AxVCpuExitReason::Hypercall {
                    nr: sbi::HART_STATUS_NR,
                    args: [hartid, 0, 0, 0, 0, 0],
                }
            }
            SbiCall::HartSuspend {
                suspend_type,
                resume_addr,
                opaque,
            } => {
                answer(self, sbi::err::SUCCESS);
                if suspend_type == sbi::suspend::NON_RETENTIVE {
                    // Resumes as a started hart would: at `resume_addr`, translation off,
                    // interrupts disabled, a0 = hart id, a1 = opaque.
                    // SAFETY: a zero vsatp turns VS-stage translation off; the guest's
                    // accesses still go through this vCPU's G-stage table.
                    unsafe { hw::write_vsatp(0) };
                    hw::clear::<{ num::VSSTATUS }>(sstatus::SIE);
                    hw::hfence_vvma_all();
                    self.regs.guest_sepc = resume_addr;
                    self.regs.set_gpr(a0, self.vcpu_id as u64);
                    self.regs.set_gpr(a1, opaque);
                }
                AxVCpuExitReason::Halt
            }
            SbiCall::RemoteFence { mask, base } => {
                answer(self, sbi::err::SUCCESS);
                let me = self.vcpu_id as u64;
                let all = base == u64::MAX;
                let targeted =
                    |h: u64| all || (h >= base && h - base < 64 && (mask >> (h - base)) & 1 != 0);
                if targeted(me) {
                    hw::hfence_vvma_all();
                    hw::fence_i();
                }
                let others =
                    all || (0..64).any(|i| (mask >> i) & 1 != 0 && base.wrapping_add(i) != me);
                if others {
                    AxVCpuExitReason::RemoteFence {
                        target_cpu: mask,
                        target_cpu_aux: base,
                        send_to_all: all,
                    }
                } else {
                    AxVCpuExitReason::Nothing
                }
            }
            SbiCall::ConsoleWrite { len, addr } => {
                match self.console_write(addr, len) {
                    Some(written) => {
                        answer(self, sbi::err::SUCCESS);
                        self.regs.set_gpr(a1, written);
                    }
                    None => answer(self, sbi::err::INVALID_PARAM),
                }
                AxVCpuExitReason::Nothing
            }
            SbiCall::ConsoleRead => {
                answer(self, sbi::err::SUCCESS);
                self.regs.set_gpr(a1, 0);
                AxVCpuExitReason::Nothing
            }
            // A successful reset does not return: `a0` (the reset type) and `a1` (the
            // reason) stay as the guest set them, for the hypervisor to read.
            SbiCall::SystemReset { .. } => AxVCpuExitReason::SystemDown,
            SbiCall::PutChar(c) => {
                hw::console_putchar(c);
                answer(self, sbi::err::SUCCESS);
                AxVCpuExitReason::Nothing
            }
            SbiCall::GetChar => {
                let c = hw::console_getchar();
                answer(self, c);
                AxVCpuExitReason::Nothing
            }
            SbiCall::SetTimer { stime, .. } => {
                self.set_guest_timer(stime);
                answer(self, sbi::err::SUCCESS);
                AxVCpuExitReason::Nothing
            }
            SbiCall::SendIpi { mask, base } => {
                answer(self, sbi::err::SUCCESS);
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
                answer(self, e);
                self.regs.set_gpr(a1, v);
                AxVCpuExitReason::Nothing
            }
            SbiCall::InvalidParam { .. } => {
                answer(self, sbi::err::INVALID_PARAM);
                AxVCpuExitReason::Nothing
            }
            SbiCall::Unsupported { .. } => {
                answer(self, sbi::err::NOT_SUPPORTED);
                AxVCpuExitReason::Nothing
            }
        }
    }

    /// DBCN `console_write`: the bytes at guest-physical `addr` to the firmware's console,
    /// up to the end of their page (the guest writes the rest with another call); how many
    /// were written, or `None` when `addr` is not guest RAM.
    #[inline(never)]
    fn console_write(&self, addr: u64, len: u64) -> Option<u64> {
        let t = self.translate(addr)?;
        if !t.flags.contains(MapFlags::READ) {
            return None;
        }
        let n = len.min(PAGE - addr % PAGE);
        let host = H::phys_to_virt(t.hpa).as_usize() as *const u8;
        for i in 0..n as usize {
            // SAFETY: the G-stage table maps this page of guest RAM readable to host memory
            // the hypervisor gave the guest, identity-reachable through `phys_to_virt`;
            // `i` stays within the page. A volatile read: the guest may change it.
            let b = unsafe { host.add(i).read_volatile() };
            hw::console_putchar(b);
        }
        Some(n)
    }

    // Out of line, as `handle_virtual_instruction`: inlined into the entry path, their
    // register pressure makes every exit save more registers (with both out of line, a
    // hypercall round trip costs the backend 291 instructions instead of 308).
    #[inline(never)]
    fn handle_guest_page_fault(
        &mut self,
        store: bool,
        retried: Option<u64>,
    ) -> VCpuResult<AxVCpuExitReason> {
        let access_flags = if store {
            AccessFlags::WRITE
        } else {
            AccessFlags::READ
        };
        let gpa = self.fault_gpa();
        let addr = GuestPhysAddr::from(gpa as usize);
        let npf = AxVCpuExitReason::NestedPageFault { addr, access_flags };
        let transformed = match decode::classify_htinst(self.regs.trap_htinst) {
            // The guest's own page-table walk touched memory the G-stage does not allow:
            // not an instruction the backend can emulate.
            Htinst::PageTableWalk { write } => {
                return Ok(AxVCpuExitReason::NestedPageFault {
                    addr,
                    access_flags: if write {
                        AccessFlags::WRITE
                    } else {
                        AccessFlags::READ
                    },
                });
            }
            Htinst::Transformed(t) if self.config.use_htinst => {
                decode::decode_transformed(t).map(|m| (m, decode::transformed_addr_offset(t)))
            }
            Htinst::Transformed(_) | Htinst::None => None,
            Htinst::Unknown(v) => {
                return Err(VCpuError::unsupported(
                    "unrecognised htinst at a guest page fault (value: htinst)",
                )
                .with_value(v))
            }
        };
        if let Some(t) = self.translate(gpa) {
            // Without Svadu the hardware also needs A set, and D for a store.
            let allowed = t.accessed
                && if store {
                    t.flags.contains(MapFlags::WRITE) && t.dirty
                } else {
                    t.flags.contains(MapFlags::READ)
                };
            if allowed && retried != Some(gpa) {
                // Allowed by the table: a stale translation. Flush and retry, once: a
                // second fault at the same address is the hypervisor's to see.
                self.stale_retry = Some(gpa);
                self.flush_gstage = true;
                return Ok(AxVCpuExitReason::Nothing);
            }
            return Ok(npf);
        }
        let (m, offset) = match transformed {
            Some(t) => t,
            None => match self.fetch_insn() {
                // Run the instruction again: the guest then takes whatever fault its memory
                // now gives, itself.
                Fetch::Faulted => return Ok(AxVCpuExitReason::Nothing),
                Fetch::Insn(raw) => {
                    let m = decode::decode_mem(raw).ok_or(
                        VCpuError::unsupported(
                            "guest accessed unmapped memory with an instruction the backend does not emulate (value: the instruction)",
                        )
                        .with_value(raw as u64),
                    )?;
                    let (base, imm) = decode::mem_operands(raw).unwrap_or((0, 0));
                    let start = self.regs.gpr(base).wrapping_add(imm as u64);
                    (m, self.regs.trap_stval.wrapping_sub(start))
                }
            },
        };
        if m.is_load == store {
            return Err(VCpuError::unsupported(
                "guest page fault kind does not match the faulting instruction (value: scause)",
            )
            .with_value(self.regs.trap_scause));
        }
        // The access must lie in the page that faulted: one that faulted part way through,
        // or runs into the next page, is partly something else (RAM, another device).
        let start = gpa.wrapping_sub(offset);
        if offset != 0 || (start % PAGE) + m.width.size() as u64 > PAGE {
            return Err(VCpuError::unsupported(
                "guest MMIO access spans a page boundary (value: the guest-physical address that faulted)",
            )
            .with_value(gpa));
        }
        // The address that faulted is not the one the instruction accessed: the fault came
        // from the guest's own page-table walk (hardware without htinst's markers).
        if (gpa ^ self.regs.trap_stval) & (PAGE - 4) != 0 {
            return Ok(npf);
        }
        Ok(self.mmio_exit(addr, m))
    }

    /// Answers the read exit waiting for `complete_read`: the value goes where the
    /// instruction put it (sign- or zero-extended), and the guest moves past it.
    pub(super) fn complete_pending_read(&mut self, value: u64) -> VCpuResult {
        match self.pending_read.take() {
            Some(PendingRead::Mmio(m)) => {
                let v = if m.signed {
                    m.width.sign_extend(value)
                } else {
                    value & m.width.mask()
                };
                self.regs.set_gpr(m.reg, v);
                self.regs.guest_sepc = self.regs.guest_sepc.wrapping_add(m.len as u64);
                Ok(())
            }
            Some(PendingRead::Csr(c, operand)) => {
                self.regs.set_gpr(c.rd, value);
                if c.writes() {
                    self.deferred_write = Some((c.csr, c.new_value(value, operand)));
                }
                self.regs.guest_sepc = self.regs.guest_sepc.wrapping_add(4);
                Ok(())
            }
            None => Err(VCpuError::bad_state(
                "complete_read: no read exit is waiting",
            )),
        }
    }

    fn mmio_exit(&mut self, addr: GuestPhysAddr, m: MemInsn) -> AxVCpuExitReason {
        if m.is_load {
            self.pending_read = Some(PendingRead::Mmio(m));
            AxVCpuExitReason::MmioRead {
                addr,
                width: m.width,
                reg: Some(m.reg),
                reg_width: AccessWidth::Qword,
                signed_ext: m.signed,
            }
        } else {
            let data = self.regs.gpr(m.reg) & m.width.mask();
            self.advance(m.len);
            AxVCpuExitReason::MmioWrite {
                addr,
                width: m.width,
                data,
            }
        }
    }

    /// Takes the guest into its own trap handler with an illegal-instruction exception at
    /// its current instruction, as the hart does for the exceptions `hedeleg` delegates:
    /// `vsepc`, `vscause` = 2, `vstval` = the instruction, `vsstatus.SPP` = the privilege it
    /// trapped from, `SPIE` = `SIE`, `SIE` = 0; it resumes at `vstvec` in VS-mode.
    fn raise_illegal_instruction(&mut self, insn: u32) {
        const SPIE: u64 = 1 << 5;
        let from_vs = self.regs.guest_sstatus & sstatus::SPP != 0;
        let old = hw::read::<{ num::VSSTATUS }>();
        let mut new = old & !(sstatus::SIE | SPIE | sstatus::SPP);
        if old & sstatus::SIE != 0 {
            new |= SPIE;
        }
        if from_vs {
            new |= sstatus::SPP;
        }
        hw::write::<{ num::VSSTATUS }>(new);
        hw::write::<{ num::VSEPC }>(self.regs.guest_sepc);
        hw::write::<{ num::VSCAUSE }>(2);
        hw::write::<{ num::VSTVAL }>(insn as u64);
        // Direct and vectored modes alike: exceptions go to BASE.
        self.regs.guest_sepc = hw::read::<{ num::VSTVEC }>() & !3;
        self.regs.guest_sstatus |= sstatus::SPP;
        self.regs.guest_hstatus |= hw::hstatus::SPVP;
    }

    // Out of line: see `handle_guest_page_fault`.
    #[inline(never)]
    fn handle_virtual_instruction(&mut self) -> VCpuResult<AxVCpuExitReason> {
        // stval holds the instruction where the hardware provides it, else 0.
        let insn = match self.regs.trap_stval {
            0 => match self.fetch_insn() {
                Fetch::Insn(raw) => raw,
                Fetch::Faulted => return Ok(AxVCpuExitReason::Nothing),
            },
            v => v as u32,
        };
        // Everything decoded below is a 32-bit instruction.
        if insn == decode::WFI {
            self.advance(4);
            return Ok(AxVCpuExitReason::Halt);
        }
        if decode::is_sfence_vma(insn) {
            hw::hfence_vvma_all();
            self.advance(4);
            return Ok(AxVCpuExitReason::Nothing);
        }
        let Some(c) = decode::decode_csr(insn) else {
            // `hfence.*`, `hlv`/`hsv`, `sret` or `wfi` from VU-mode...: the guest gets the
            // illegal-instruction exception a machine without the H extension would raise.
            self.raise_illegal_instruction(insn);
            return Ok(AxVCpuExitReason::Nothing);
        };
        let operand = match c.src {
            CsrSrc::Reg(r) => self.regs.gpr(r),
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
}
