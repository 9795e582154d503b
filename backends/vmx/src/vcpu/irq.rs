//! Interrupts: the guest's pending vectors and their delivery (VM-entry interruption
//! information, interrupt-window exiting, re-injection of the IDT-vectoring information),
//! the kick IPI, and the entry around the world switch with the host's interrupts (taken at
//! an exit that acknowledged one and handed to the host's IDT).

use axvcpu::{AxVCpuExitReason, AxVCpuHal, VCpuError, VCpuResult, VectorSet};
use axvcpu_x86::lapic::{check_injectable_vector, KICK_VECTOR};

use super::{VmcsState, VmxVCpu};
use crate::controls::proc;
use crate::hw;
use crate::regs::gpr;
use crate::switch::{self, Entry};
use crate::vmcs::{ctrl, exit, guest, info, intr};

const RFLAGS_IF: u64 = 1 << 9;
/// Interruptibility bits 0 and 1: blocking by STI, by MOV SS.
const SHADOW: u64 = 0b11;

/// An event to deliver again: interruption information, error code, instruction length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Reinject {
    pub(super) info: u32,
    pub(super) error: u32,
    pub(super) len: u32,
}

/// A vCPU's interrupt state.
#[derive(Debug, Default)]
pub(super) struct Interrupts {
    /// Injected vectors the guest has not taken.
    pub(super) pending: VectorSet,
    /// An event whose delivery the last exit cut short.
    pub(super) reinject: Option<Reinject>,
    /// Interrupt-window exiting is on in the VMCS.
    pub(super) window: bool,
    /// The primary processor-based controls without the window bit.
    pub(super) proc_ctl: u32,
    /// The guest's CR8 (task priority), kept so it reads back what was written: `mov`s of
    /// CR8 exit (no TPR shadow). It does not hold back injected interrupts; priorities
    /// are the hypervisor's interrupt-controller model's.
    pub(super) cr8: u8,
}

impl Interrupts {
    pub(super) fn inject(&mut self, vector: usize) -> VCpuResult {
        check_injectable_vector(vector)?;
        self.pending.insert(vector);
        Ok(())
    }

    /// Delivers exception `vector` (with `error_code`) at the next entry, ahead of any
    /// interrupt (a hardware exception in the VM-entry interruption information). Refused
    /// while an event an exit cut short waits to be delivered again, and for vectors that
    /// are not exceptions (NMI, 32 and up).
    pub(super) fn exception(&mut self, vector: u8, error_code: Option<u32>) -> VCpuResult {
        if vector >= 32 || vector == 2 {
            return Err(VCpuError::invalid_input(
                "inject_exception: x86 exceptions are vectors 0..32 other than NMI (2)",
            )
            .with_value(u64::from(vector)));
        }
        if self.reinject.is_some() {
            return Err(VCpuError::bad_state(
                "inject_exception: an event the last exit interrupted is still to be delivered",
            ));
        }
        let mut info = u32::from(vector) | (3 << 8) | intr::VALID;
        if error_code.is_some() {
            info |= intr::ERROR_CODE;
        }
        self.reinject = Some(Reinject {
            info,
            error: error_code.unwrap_or(0),
            len: 0,
        });
        Ok(())
    }

    pub(super) fn has_pending(&self) -> bool {
        !self.pending.is_empty()
            || self
                .reinject
                .is_some_and(|ev| ev.info & intr::TYPE_MASK == 0 && ev.info & intr::VALID != 0)
    }
}

/// What [`VmxVCpu::enter`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Entered {
    /// A kick was requested: no entry.
    Kicked,
    /// The guest ran and exited.
    Exited,
    /// The entry failed (`FailEntry`'s reason: the VM-instruction error, or `u64::MAX` for
    /// VMfailInvalid).
    Failed(u64),
}

impl<H: AxVCpuHal> VmxVCpu<H> {
    /// Sets the VM-entry interruption information and interrupt-window exiting for the
    /// next entry: the event an exit cut short first, else the highest pending vector if
    /// the guest can take it now; the window while vectors remain pending. (Every VM exit
    /// clears the interruption information's valid bit, so nothing stale is injected.)
    pub(super) fn prepare_injection(&mut self) {
        let v = self.vmcs();
        let irq = &mut self.irq;
        if irq.reinject.is_none() && irq.pending.is_empty() && !irq.window {
            return;
        }
        if let Some(ev) = irq.reinject.take() {
            let mut info = ev.info;
            if info & intr::ERROR_CODE != 0 {
                // Real mode pushes no error code, and VM entry refuses one there.
                if v.read(guest::CR0) & crate::controls::CR0_PE == 0 {
                    info &= !intr::ERROR_CODE;
                } else {
                    v.write(ctrl::ENTRY_EXCEPTION_ERROR, u64::from(ev.error));
                }
            }
            v.write(ctrl::ENTRY_INTR_INFO, u64::from(info));
            if matches!((ev.info & intr::TYPE_MASK) >> 8, 4..=6) {
                v.write(ctrl::ENTRY_INSN_LEN, u64::from(ev.len));
            }
        } else if let Some(vector) = irq.pending.highest() {
            let open = v.read(guest::RFLAGS) & RFLAGS_IF != 0
                && v.read(guest::INTERRUPTIBILITY) & SHADOW == 0;
            if open {
                irq.pending.remove(vector);
                v.write(
                    ctrl::ENTRY_INTR_INFO,
                    vector as u64 | u64::from(intr::VALID),
                );
            }
        }
        let window = !irq.pending.is_empty();
        if window != irq.window {
            irq.window = window;
            let bit = if window { proc::INTERRUPT_WINDOW } else { 0 };
            v.write(ctrl::PROC_BASED, u64::from(irq.proc_ctl | bit));
        }
    }

    /// After an exit: the guest's `rip` and `rsp` from the VMCS, and the event whose
    /// delivery the exit cut short, to deliver again.
    pub(super) fn after_exit(&mut self) {
        let v = self.vmcs();
        self.regs.rip = v.read(guest::RIP);
        self.regs.gprs.0[gpr::RSP] = v.read(guest::RSP);
        let idt = v.read(info::IDT_VECTORING_INFO) as u32;
        if idt & intr::VALID != 0 {
            self.irq.reinject = Some(Reinject {
                // Bits 12..31 are not part of the entry format.
                info: idt & (intr::VALID | 0xfff),
                error: v.read(info::IDT_VECTORING_ERROR) as u32,
                len: v.read(info::EXIT_INSN_LEN) as u32,
            });
        }
    }

    /// One entry into the guest and back.
    ///
    /// Host interrupts: `cli`; take the kick request (set: no entry); make the VMCS current
    /// if another vCPU's is; flush; write back `rip`/`rsp`; inject; enter. An interrupt arriving from here on stays
    /// pending in the local APIC and makes the guest exit as soon as it runs
    /// (external-interrupt exiting). After an exit that acknowledged one, its vector goes to
    /// the host's IDT (`int vector`) before the caller's `IF` comes back.
    pub(super) fn enter(&mut self) -> VCpuResult<Entered> {
        let VmcsState::Active(_) = self.state else {
            return Err(VCpuError::bad_state("run before bind"));
        };
        let Some(controls) = self.controls else {
            return Err(VCpuError::bad_state("run before the VMCS was filled"));
        };
        let flags = hw::save_flags_cli();
        if self.kicker.take_request() {
            hw::restore_flags(flags);
            return Ok(Entered::Kicked);
        }
        let vmcs_pa = self.vmcs.as_usize() as u64;
        // SAFETY: bound to this CPU (VMX on here, `bind`); the VMCS is active on this CPU
        // only, so loading it again when another vCPU's is current is allowed.
        if unsafe { hw::vmptrst() } != vmcs_pa {
            // SAFETY: as above.
            if let Err(valid) = unsafe { hw::vmptrld(self.vmcs) } {
                hw::restore_flags(flags);
                return Err(VCpuError::bad_state("vmptrld failed").with_value(u64::from(valid)));
            }
        }
        let v = self.vmcs();
        if self.flush_tlb {
            self.flush_tlb = false;
            let ept_ty = if controls.invept_single { 1 } else { 2 };
            let vpid_ty = if controls.invvpid_single { 1 } else { 2 };
            // SAFETY: VMX is on; `Controls::compute` checked INVEPT/INVVPID and the types.
            unsafe {
                hw::invept(ept_ty, self.eptp(&controls));
                hw::invvpid(vpid_ty, self.vpid);
            }
        }
        if self.regs.rip_dirty {
            v.write(guest::RIP, self.regs.rip);
            // The STI/MOV-SS shadow belonged to the instruction `rip` moved past.
            let s = v.read(guest::INTERRUPTIBILITY);
            if s & SHADOW != 0 {
                v.write(guest::INTERRUPTIBILITY, s & !SHADOW);
            }
        }
        if self.regs.rsp_dirty {
            v.write(guest::RSP, self.regs.gprs.0[gpr::RSP]);
        }
        self.regs.rip_dirty = false;
        self.regs.rsp_dirty = false;
        self.prepare_injection();
        // SAFETY: the VMCS is current and filled (`bind`), with this CPU's host state;
        // interrupts are off.
        let entry = unsafe { switch::enter(&mut self.regs.gprs, self.launched) };
        let out = match entry {
            Entry::Exited => {
                self.launched = true;
                let reason = v.read(info::EXIT_REASON) as u32;
                if reason == exit::EXTERNAL_INTERRUPT || reason == exit::EXCEPTION_NMI {
                    let i = v.read(info::EXIT_INTR_INFO) as u32;
                    let nmi = i & intr::TYPE_MASK == intr::TYPE_NMI;
                    if i & intr::VALID != 0 && (reason == exit::EXTERNAL_INTERRUPT || nmi) {
                        // SAFETY: the host gives every vector it enables an IDT handler
                        // (the crate's requirement); the exit acknowledged this one.
                        unsafe { hw::dispatch_interrupt((i & intr::VECTOR_MASK) as u8) };
                    }
                }
                self.after_exit();
                Entered::Exited
            }
            Entry::FailValid => Entered::Failed(v.read(info::VM_INSTRUCTION_ERROR)),
            Entry::FailInvalid => Entered::Failed(u64::MAX),
        };
        hw::restore_flags(flags);
        Ok(out)
    }

    /// An external-interrupt or NMI exit (`info`: the exit interruption information):
    /// `Kicked` if a kick was requested, else the host interrupt (already handed to the
    /// host's IDT), or `Nothing` for the late IPI of a kick already taken.
    pub(super) fn host_interrupt_exit(
        &mut self,
        reason: u32,
        info: u32,
    ) -> VCpuResult<AxVCpuExitReason> {
        let nmi = info & intr::TYPE_MASK == intr::TYPE_NMI;
        if reason == exit::EXCEPTION_NMI && !nmi {
            return Err(VCpuError::unsupported(
                "guest exception exit (value: the exit interruption information)",
            )
            .with_value(u64::from(info)));
        }
        if self.kicker.take_request() {
            return Ok(AxVCpuExitReason::Kicked);
        }
        if nmi {
            return Ok(AxVCpuExitReason::ExternalInterrupt { vector: 2 });
        }
        let vector = (info & intr::VECTOR_MASK) as u8;
        if info & intr::VALID == 0 || vector == KICK_VECTOR {
            return Ok(AxVCpuExitReason::Nothing);
        }
        Ok(AxVCpuExitReason::ExternalInterrupt {
            vector: u64::from(vector),
        })
    }
}
