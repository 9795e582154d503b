//! A model backend for the suite's own tests: its "guest" is the contract's `Irq` program
//! written as a state machine, its interrupt delivery one of several [`Delivery`] rules,
//! right and wrong, so the tests show each `irq-*` scenario passes on a backend that
//! follows the interrupt rule and fails, for the right reason, on one that does not.

use alloc::collections::VecDeque;
use alloc::string::String;
use core::cell::Cell;
use core::sync::atomic::{AtomicUsize, Ordering};
use std::boxed::Box;

use axvcpu::{
    AxArchVCpu, AxVCpuExitReason, AxVCpuHal, GuestPhysAddr, HostPhysAddr, HostVirtAddr, SysRegAddr,
    VCpuError, VCpuKick, VCpuResult, VectorSet, MAX_CPUS,
};

use crate::contract::{GuestProgram, HC_DONE, HC_READY, HC_REPORT};
use crate::{Isa, Join, Layout, Platform, PlatformInfo, Scenario, TestVm};

/// The vectors the model platform names.
pub const FIRST: usize = 0x40;
pub const SECOND: usize = 0x41;

static NEXT_CPU: AtomicUsize = AtomicUsize::new(1);
std::thread_local! {
    // Each test thread is its own physical CPU, so parallel tests never share one.
    static CPU: Cell<usize> = Cell::new(NEXT_CPU.fetch_add(1, Ordering::Relaxed) % MAX_CPUS);
}

#[derive(Debug)]
pub struct ModelHal;

impl AxVCpuHal for ModelHal {
    fn alloc_frame() -> Option<HostPhysAddr> {
        None
    }
    fn dealloc_frame(_: HostPhysAddr) {}
    fn phys_to_virt(p: HostPhysAddr) -> HostVirtAddr {
        HostVirtAddr::from(p.as_usize())
    }
    fn virt_to_phys(v: HostVirtAddr) -> HostPhysAddr {
        HostPhysAddr::from(v.as_usize())
    }
    fn current_cpu_id() -> usize {
        CPU.with(|c| c.get())
    }
}

#[derive(Debug)]
pub struct NoKick;

impl VCpuKick for NoKick {
    fn kick(&self) {}
}

/// How the model backend holds and delivers what it is handed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// The interrupt rule: a pending bit per vector, lowest taken first.
    Merge,
    /// A queue: a vector handed over twice is delivered twice.
    Queue,
    /// One slot: what arrives while it is full is dropped (merges a repeat, loses a
    /// distinct vector).
    OneSlot,
    /// Merges, but a vector handed over again while held comes back once more, two entries
    /// after the guest's first `HC_DONE`.
    LateDuplicate,
    /// Nothing is ever delivered.
    Never,
}

/// The `Irq` program's progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Guest {
    /// Masked, after this many `HC_READY`s.
    Masked(u8),
    /// Unmasked, waiting for [`FIRST`] (then in its `HC_DONE` loop).
    Unmasked { took_first: bool },
}

#[derive(Debug)]
pub struct ModelArch {
    delivery: Delivery,
    guest: Guest,
    pending: VectorSet,
    queue: VecDeque<usize>,
    /// [`Delivery::LateDuplicate`]: the vector, and the `HC_DONE`s still to come first.
    late: Option<(usize, u32)>,
}

impl ModelArch {
    fn take(&mut self) -> Option<usize> {
        match self.delivery {
            Delivery::Queue | Delivery::OneSlot => self.queue.pop_front(),
            _ => {
                let v = self.pending.lowest()?;
                self.pending.remove(v);
                Some(v)
            }
        }
    }
}

fn hypercall(nr: u64, arg: u64) -> AxVCpuExitReason {
    AxVCpuExitReason::Hypercall {
        nr,
        args: [arg, 0, 0, 0, 0, 0],
    }
}

impl AxArchVCpu for ModelArch {
    type CreateConfig = Delivery;
    type SetupConfig = ();
    type Hal = ModelHal;
    type Kicker = NoKick;

    fn new(_: usize, _: usize, delivery: Delivery) -> VCpuResult<Self> {
        Ok(Self {
            delivery,
            guest: Guest::Masked(0),
            pending: VectorSet::new(),
            queue: VecDeque::new(),
            late: None,
        })
    }
    fn set_entry(&mut self, _: GuestPhysAddr) -> VCpuResult {
        Ok(())
    }
    unsafe fn set_ept_root(&mut self, _: HostPhysAddr) -> VCpuResult {
        Ok(())
    }
    fn setup(&mut self, _: ()) -> VCpuResult {
        Ok(())
    }
    fn run(&mut self) -> VCpuResult<AxVCpuExitReason> {
        Ok(match self.guest {
            Guest::Masked(0) => {
                self.guest = Guest::Masked(1);
                hypercall(HC_READY, 0)
            }
            Guest::Masked(_) => {
                self.guest = Guest::Unmasked { took_first: false };
                hypercall(HC_READY, 0)
            }
            Guest::Unmasked { took_first } => {
                if let Some(v) = self.take() {
                    self.guest = Guest::Unmasked {
                        took_first: took_first || v == FIRST,
                    };
                    return Ok(hypercall(HC_REPORT, v as u64));
                }
                match self.late {
                    Some((v, 0)) if took_first => {
                        self.late = None;
                        return Ok(hypercall(HC_REPORT, v as u64));
                    }
                    Some((v, n)) if took_first => self.late = Some((v, n - 1)),
                    _ => {}
                }
                if took_first {
                    hypercall(HC_DONE, 0)
                } else {
                    AxVCpuExitReason::Halt
                }
            }
        })
    }
    fn bind(&mut self) -> VCpuResult {
        Ok(())
    }
    fn unbind(&mut self) -> VCpuResult {
        Ok(())
    }
    fn set_gpr(&mut self, _: usize, _: usize) -> VCpuResult {
        Ok(())
    }
    fn get_gpr(&self, _: usize) -> VCpuResult<usize> {
        Ok(0)
    }
    fn pc(&self) -> usize {
        0
    }
    fn set_pc(&mut self, _: usize) -> VCpuResult {
        Ok(())
    }
    fn set_return_value(&mut self, _: usize) {}
    fn set_boot_arg(&mut self, _: usize) -> VCpuResult {
        Ok(())
    }
    fn complete_read(&mut self, _: u64) -> VCpuResult {
        Ok(())
    }
    fn inject_interrupt(&mut self, vector: usize) -> VCpuResult {
        match self.delivery {
            Delivery::Merge => {
                self.pending.insert(vector);
            }
            Delivery::Queue => self.queue.push_back(vector),
            Delivery::OneSlot => {
                if self.queue.is_empty() {
                    self.queue.push_back(vector);
                }
            }
            Delivery::LateDuplicate => {
                if !self.pending.insert(vector) {
                    self.late = Some((vector, 2));
                }
            }
            Delivery::Never => {}
        }
        Ok(())
    }
    fn has_pending_interrupt(&self) -> bool {
        !self.pending.is_empty() || !self.queue.is_empty()
    }
    fn kicker(&self) -> NoKick {
        NoKick
    }
}

#[derive(Debug)]
pub struct ModelVm(Delivery);

// SAFETY: the model backend never walks a nested page table nor touches memory.
unsafe impl TestVm for ModelVm {
    type Arch = ModelArch;

    fn layout(&self) -> Layout {
        Layout {
            ram_base: GuestPhysAddr::from(0x1000),
            ram_size: 0x1000,
            ro_page: GuestPhysAddr::from(0x10_0000),
            mmio_base: GuestPhysAddr::from(0x20_0000),
        }
    }
    fn entry(&self) -> GuestPhysAddr {
        GuestPhysAddr::from(0x1000)
    }
    fn ept_root(&self) -> HostPhysAddr {
        HostPhysAddr::from(0x1000)
    }
    fn create_config(&self, _: usize) -> Delivery {
        self.0
    }
    fn setup_config(&self, _: usize) {}
    fn vm_id(&self) -> usize {
        1
    }
    fn read_u64(&self, _: GuestPhysAddr) -> VCpuResult<u64> {
        Err(VCpuError::unsupported("the model has no memory"))
    }
    fn make_writable(&self, _: GuestPhysAddr) -> VCpuResult {
        Err(VCpuError::unsupported("the model has no memory"))
    }
}

#[derive(Debug)]
pub struct ModelPlatform(pub Delivery);

impl Platform for ModelPlatform {
    type Vm = ModelVm;

    fn info(&self) -> PlatformInfo {
        PlatformInfo {
            isa: Isa::X86_64,
            name: "model",
            irq_vector: FIRST,
            second_irq_vector: SECOND,
            sysreg_read: None::<SysRegAddr>,
            sysreg_write: None,
            halt_insn_len: 1,
            gpr_range: (0, 16),
            smp_id_reg: 3,
            garbage_programs: 0,
            chaos_programs: 0,
            hypercall_insn: &[],
            x86_emulated: false,
        }
    }
    fn not_applicable(&self, program: GuestProgram) -> Option<&'static str> {
        (program != GuestProgram::Irq).then_some("the model runs only the Irq program")
    }
    fn create_vm(&mut self, _: GuestProgram) -> VCpuResult<ModelVm> {
        Ok(ModelVm(self.0))
    }
    fn create_raw_vm(&mut self, _: &[u8]) -> VCpuResult<ModelVm> {
        Err(VCpuError::unsupported("the model runs no raw code"))
    }
    fn create_chaos_vm(&mut self, _: &[u8]) -> VCpuResult<ModelVm> {
        Err(VCpuError::unsupported("the model runs no raw code"))
    }
    fn cpu_count(&self) -> usize {
        1
    }
    fn spawn_on_cpu(
        &self,
        _: usize,
        _: Box<dyn FnOnce() + Send + 'static>,
    ) -> VCpuResult<Box<dyn Join>> {
        Err(VCpuError::unsupported("the model has one CPU"))
    }
    fn clock(&self) -> fn() -> u64 {
        || 0
    }
}

/// The report line of `scenario` on a model backend delivering by `delivery` (one line:
/// `cargo xtask` reads reports line by line).
pub fn line(delivery: Delivery, scenario: Scenario) -> String {
    let mut out = String::new();
    crate::run_selected(&mut ModelPlatform(delivery), &mut out, |s| s == scenario);
    let lines: std::vec::Vec<&str> = out.lines().collect();
    assert_eq!(
        lines.len(),
        2,
        "one scenario line and the closing line: {out}"
    );
    lines[0].into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Scenario::{IrqInject, IrqMerge, IrqQueued};

    #[test]
    fn the_irq_scenarios_pass_on_a_backend_that_follows_the_rule() {
        for s in [IrqInject, IrqQueued, IrqMerge] {
            assert_eq!(line(Delivery::Merge, s), std::format!("PASS {s}"));
        }
    }

    #[test]
    fn only_irq_merge_catches_a_backend_that_queues_a_held_vector_twice() {
        // The core merges what it holds itself, so inject and queued cannot tell.
        assert_eq!(line(Delivery::Queue, IrqInject), "PASS irq-inject");
        assert_eq!(line(Delivery::Queue, IrqQueued), "PASS irq-queued");
        let l = line(Delivery::Queue, IrqMerge);
        assert!(
            l.starts_with("FAIL irq-merge: vector 0x40 was taken 2 times, not once"),
            "{l}"
        );
    }

    #[test]
    fn irq_merge_fails_when_a_distinct_vector_is_lost() {
        let l = line(Delivery::OneSlot, IrqMerge);
        assert!(
            l.starts_with("FAIL irq-merge: vector 0x41 was never taken"),
            "{l}"
        );
    }

    #[test]
    fn irq_merge_catches_a_duplicate_delivered_after_hc_done() {
        let l = line(Delivery::LateDuplicate, IrqMerge);
        assert!(
            l.starts_with("FAIL irq-merge: vector 0x40 was taken 2 times"),
            "{l}"
        );
    }

    #[test]
    fn every_irq_scenario_fails_when_nothing_is_delivered() {
        for s in [IrqInject, IrqQueued, IrqMerge] {
            let l = line(Delivery::Never, s);
            // The vector is gone: the guest halts and the vCPU is Blocked with it injected.
            let why = "halted with vector 0x40 injected and not yet taken, state Blocked";
            assert_eq!(l, std::format!("FAIL {s}: {why}"));
        }
    }
}
