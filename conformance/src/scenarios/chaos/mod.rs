//! `chaos`: seeded random programs that fault inside the guest, toggle interrupt masks and
//! use privileged instructions, run on the platform's chaos runtime
//! ([`Platform::create_chaos_vm`]), while the hypervisor injects interrupts and answers
//! every exit with random values. Every run must end in a defined exit or an error, exits
//! must agree with the memory map, and the host must survive.
//!
//! The generators (one per instruction set: [`x86`], [`riscv`], [`aarch64`]) mix
//! templates: arithmetic and forward-branch noise, raw random bytes, undefined
//! instructions, loads and stores to random addresses (mostly a scratch page, also
//! anywhere in RAM, the read-only page, the MMIO window, unmapped guest-physical space,
//! beyond the physical-address width, misaligned), interrupt-mask toggles, privileged and
//! system instructions, firmware calls and hypercalls.

mod aarch64;
mod riscv;
mod x86;

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use axvcpu::{AxVCpuExitReason, GuestPhysAddr};

use super::wild::{check_exit, start_watchdog, DogOf, Rng};
use crate::contract::{
    CHAOS_CODE_BYTES, CHAOS_CODE_OFFSET, CHAOS_COUNTS_OFFSET, CHAOS_DATA_BYTES, CHAOS_DATA_OFFSET,
};
use crate::{Isa, Layout, Platform, TestVm};

/// Exits a program may take before it is abandoned.
const MAX_EXITS: usize = 64;
/// How long one `run()` may take before the watchdog kicks it: a program that runs this
/// long without an exit loops (a backward `eret`/`sret`, an interrupt storm, a runtime
/// overwritten).
const RUN_BUDGET_NS: u64 = 5_000_000;
/// The seed of program 0; program `i` uses `SEED + i`.
pub const SEED: u64 = 0x00c4_a05e_edf0_0d11;

/// What the chaos generator needs to know about a platform and its VMs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChaosTarget {
    /// The instruction set to generate.
    pub isa: Isa,
    /// The VM's memory map.
    pub layout: Layout,
    /// Where the code runs: the VM's entry + [`CHAOS_CODE_OFFSET`].
    pub code_base: usize,
    /// The platform's hypercall instruction (`PlatformInfo::hypercall_insn`).
    pub hypercall: &'static [u8],
    /// The two interrupt vectors the platform injects (x86 `int n` aims at them too).
    pub irq_vectors: [usize; 2],
    /// `PlatformInfo::x86_emulated`: make what the emulator cannot run 16 times rarer.
    pub x86_emulated: bool,
}

impl ChaosTarget {
    /// The scratch page most RAM accesses aim at.
    fn data_base(&self) -> u64 {
        (self.code_base - CHAOS_CODE_OFFSET + CHAOS_DATA_OFFSET) as u64
    }

    /// A random address for a load or store: mostly the scratch page, also anywhere in RAM
    /// (the runtime included), the read-only page, the MMIO window, unmapped space and
    /// beyond any physical-address width; misaligned one time in five.
    fn address(&self, rng: &mut Rng) -> u64 {
        let l = &self.layout;
        let base = match rng.below(100) {
            0..=29 => self.data_base() + rng.below(CHAOS_DATA_BYTES as u64 - 8),
            30..=37 => l.ram_base.as_usize() as u64 + rng.below(l.ram_size as u64 - 8),
            38..=49 => l.ro_page.as_usize() as u64 + rng.below(4096 - 8),
            50..=77 => l.mmio_base.as_usize() as u64 + rng.below(4096 - 8),
            78..=91 => rng.next() & 0xffff_fff8,
            _ => (1 << (40 + rng.below(23))) | (rng.next() & 0xff_ffff_fff8),
        };
        let aligned = base & !7;
        if rng.chance(1, 5) {
            aligned | (1 + rng.below(7))
        } else {
            aligned
        }
    }
}

/// The chaos program of `seed` for `target`: exactly [`CHAOS_CODE_BYTES`] bytes whose end
/// jumps back to the start.
pub fn chaos_program(target: &ChaosTarget, seed: u64) -> Vec<u8> {
    let mut rng = Rng::new(seed);
    let code = match target.isa {
        Isa::X86_64 => x86::program(target, &mut rng),
        Isa::Riscv64 => riscv::program(target, &mut rng),
        Isa::Aarch64 => aarch64::program(target, &mut rng),
    };
    debug_assert_eq!(code.len(), CHAOS_CODE_BYTES);
    code
}

/// Exits counted by kind (in order of first sight), runs that ended in an error, and what
/// the guests' runtimes counted.
#[derive(Debug, Default)]
struct Tally {
    programs: u64,
    exits: Vec<(&'static str, u64)>,
    errors: Vec<(&'static str, u64)>,
    guest_exceptions: u64,
    guest_interrupts: u64,
}

impl Tally {
    fn count(&mut self, kind: &'static str) {
        match self.exits.iter_mut().find(|(k, _)| *k == kind) {
            Some((_, n)) => *n += 1,
            None => self.exits.push((kind, 1)),
        }
    }

    fn error(&mut self, reason: &'static str) {
        match self.errors.iter_mut().find(|(r, _)| *r == reason) {
            Some((_, n)) => *n += 1,
            None => self.errors.push((reason, 1)),
        }
    }

    fn line(&mut self) -> String {
        self.exits.sort_by_key(|e| core::cmp::Reverse(e.1));
        let total: u64 = self.exits.iter().map(|(_, n)| n).sum();
        let kinds: Vec<String> = self.exits.iter().map(|(k, n)| format!("{k} {n}")).collect();
        self.errors.sort_by_key(|e| core::cmp::Reverse(e.1));
        let errors: u64 = self.errors.iter().map(|(_, n)| n).sum();
        let reasons: Vec<String> = self
            .errors
            .iter()
            .map(|(r, n)| format!("{n} `{r}`"))
            .collect();
        format!(
            "{} programs, {total} exits ({}), {errors} ended in Err ({}); in the guests: {} exceptions, {} interrupts taken",
            self.programs,
            kinds.join(", "),
            reasons.join(", "),
            self.guest_exceptions,
            self.guest_interrupts
        )
    }
}

/// The exits an instruction set cannot produce.
fn impossible(isa: Isa, exit: &AxVCpuExitReason) -> bool {
    match exit {
        AxVCpuExitReason::IoRead { .. } | AxVCpuExitReason::IoWrite { .. } => isa != Isa::X86_64,
        AxVCpuExitReason::CpuDown { .. } => isa == Isa::X86_64,
        AxVCpuExitReason::Nothing => true,
        _ => false,
    }
}

fn run_program<P: Platform>(
    p: &mut P,
    target: &ChaosTarget,
    seed: u64,
    dog: &DogOf<P>,
    tally: &mut Tally,
) -> Result<(), String> {
    let vm = p
        .create_chaos_vm(&chaos_program(target, seed))
        .map_err(|e| format!("create_chaos_vm: {e}"))?;
    let layout = vm.layout();
    // The host's choices come from their own stream, so the program stays what its seed
    // makes whatever the host does.
    let mut rng = Rng::new(!seed);
    let mut v = vm
        .new_vcpu(0, vm.entry())
        .map_err(|e| format!("new vCPU: {e}"))?;
    v.bind().map_err(|e| format!("bind: {e}"))?;
    tally.programs += 1;
    for _ in 0..MAX_EXITS {
        if rng.chance(1, 4) {
            v.inject_interrupt(rng.pick(&target.irq_vectors))
                .map_err(|e| format!("inject_interrupt: {e}"))?;
        }
        let exit = match dog.run(&mut v, RUN_BUDGET_NS)? {
            Ok(exit) => exit,
            Err(e) => {
                tally.error(e.reason());
                break;
            }
        };
        tally.count(exit.name());
        if impossible(target.isa, &exit) {
            return Err(format!("{exit:?} on {:?}", target.isa));
        }
        if let AxVCpuExitReason::NestedPageFault { addr, .. } = exit {
            if addr.as_usize() & !0xfff == layout.ro_page.as_usize() && rng.chance(3, 4) {
                vm.make_writable(layout.ro_page)
                    .map_err(|e| format!("make_writable: {e}"))?;
                v.nested_page_table_changed()
                    .map_err(|e| format!("nested_page_table_changed: {e}"))?;
                continue;
            }
        }
        if !check_exit(&layout, &exit)? {
            break;
        }
        let answered = match exit {
            AxVCpuExitReason::SysRegRead { .. }
                if target.isa == Isa::X86_64 && rng.chance(1, 4) =>
            {
                v.inject_exception(13, Some(0))
            }
            AxVCpuExitReason::MmioRead { .. }
            | AxVCpuExitReason::IoRead { .. }
            | AxVCpuExitReason::SysRegRead { .. } => v.complete_read(rng.next()),
            AxVCpuExitReason::Hypercall { .. } => v.set_return_value(rng.next() as usize),
            _ => Ok(()),
        };
        answered.map_err(|e| format!("answering {exit:?}: {e}"))?;
    }
    let counted = |at: usize| {
        vm.read_u64(GuestPhysAddr::from(vm.entry().as_usize() + at))
            .ok()
            .filter(|n| *n < 1 << 24) // a random store may have hit the counter
            .unwrap_or(0)
    };
    tally.guest_exceptions += counted(CHAOS_COUNTS_OFFSET);
    tally.guest_interrupts += counted(CHAOS_COUNTS_OFFSET + 8);
    Ok(())
}

/// The scenario: returns the tally line for the report.
pub(crate) fn chaos<P: Platform>(p: &mut P) -> Result<String, String> {
    let info = p.info();
    // The layout and entry are the platform's, the same for every VM: learn them once.
    let probe = p
        .create_chaos_vm(&[])
        .map_err(|e| format!("create_chaos_vm: {e}"))?;
    let target = ChaosTarget {
        isa: info.isa,
        layout: probe.layout(),
        code_base: probe.entry().as_usize() + CHAOS_CODE_OFFSET,
        hypercall: info.hypercall_insn,
        irq_vectors: [info.irq_vector, info.second_irq_vector],
        x86_emulated: info.x86_emulated,
    };
    drop(probe);
    let clock = p.clock();
    let t0 = clock();
    let (dog, watcher) = start_watchdog(p)?;
    let mut tally = Tally::default();
    let mut result = Ok(());
    for i in 0..info.chaos_programs as u64 {
        let seed = SEED.wrapping_add(i);
        if let Err(why) = run_program(p, &target, seed, &dog, &mut tally) {
            result = Err(format!("program {i} (seed {seed:#x}): {why}"));
            break;
        }
    }
    dog.stop(watcher)?;
    let ms = (clock() - t0) / 1_000_000;
    result.map(|()| format!("{}, {ms} ms", tally.line()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(isa: Isa) -> ChaosTarget {
        ChaosTarget {
            isa,
            layout: Layout {
                ram_base: GuestPhysAddr::from(0x1_0000),
                ram_size: 0x4_0000,
                ro_page: GuestPhysAddr::from(0x6_0000),
                mmio_base: GuestPhysAddr::from(0xd000_0000),
            },
            code_base: 0x1_4000,
            hypercall: &[0x0f, 0x01, 0xd9],
            irq_vectors: [0x40, 0x50],
            x86_emulated: false,
        }
    }

    #[test]
    fn programs_are_reproducible_sized_and_differ_by_seed() {
        for isa in [Isa::X86_64, Isa::Riscv64, Isa::Aarch64] {
            let t = target(isa);
            let a = chaos_program(&t, 7);
            assert_eq!(a.len(), CHAOS_CODE_BYTES, "{isa:?}");
            assert_eq!(a, chaos_program(&t, 7), "{isa:?}");
            assert_ne!(a, chaos_program(&t, 8), "{isa:?}");
        }
    }
}
