//! `garbage`: random bytes as guest code. Every run must end in a defined exit or an error,
//! exits must be consistent with the guest's memory map, and the host must survive.

use alloc::boxed::Box;
use alloc::format;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, Ordering};

use axvcpu::{AxArchVCpu, AxVCpuExitReason, GuestPhysAddr, VCpuHandle, VCpuState};

use super::{ArchOf, Check, Waiter};
use crate::{Layout, Platform, TestVm};

/// Bytes of random code per program.
const PROGRAM_BYTES: usize = 256;
/// Exits a program may take before it is abandoned.
const MAX_EXITS: usize = 32;
/// How long one `run()` may take before the watchdog kicks it.
const RUN_BUDGET_NS: u64 = 20_000_000;
/// The seed of program 0; program `i` uses `SEED + i`.
pub const SEED: u64 = 0x0005_eed0_fa11_c0de;

/// `len` random bytes from `seed` (xorshift64*: enough randomness for instruction soup,
/// reproducible from the seed). Backends' own random-guest tests use it too.
pub fn random_program(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            (x.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 56) as u8
        })
        .collect()
}

/// Kicks the armed vCPU when its deadline passes; runs on another CPU.
struct Watchdog<A: AxArchVCpu> {
    armed: spin::Mutex<Option<(u64, VCpuHandle<A>)>>,
    stop: AtomicBool,
}

impl<A: AxArchVCpu> Watchdog<A> {
    fn watch(&self, wait: Waiter) {
        while !self.stop.load(Ordering::Acquire) {
            if let Some((deadline, handle)) = &*self.armed.lock() {
                if (wait.clock)() > *deadline {
                    handle.kick();
                }
            }
            wait.until(1_000_000, || self.stop.load(Ordering::Acquire));
        }
    }
}

fn in_ram(layout: &Layout, addr: GuestPhysAddr) -> bool {
    let base = layout.ram_base.as_usize();
    (base..base + layout.ram_size).contains(&addr.as_usize())
}

/// Checks one exit against the memory map; returns whether the program may go on.
fn check_exit(layout: &Layout, exit: &AxVCpuExitReason) -> Result<bool, alloc::string::String> {
    match *exit {
        AxVCpuExitReason::MmioRead { addr, .. } | AxVCpuExitReason::MmioWrite { addr, .. }
            if in_ram(layout, addr) =>
        {
            Err(format!("MMIO exit at {addr:?}, which is mapped RAM"))
        }
        AxVCpuExitReason::NestedPageFault { addr, .. }
            if in_ram(layout, addr) && addr.as_usize() & !0xfff != layout.ro_page.as_usize() =>
        {
            Err(format!(
                "nested page fault at {addr:?}, which is mapped read-write RAM"
            ))
        }
        // A fault repeats until the hypervisor fixes the mapping; power and entry failures end.
        AxVCpuExitReason::NestedPageFault { .. }
        | AxVCpuExitReason::SystemDown
        | AxVCpuExitReason::CpuDown { .. }
        | AxVCpuExitReason::FailEntry { .. }
        | AxVCpuExitReason::Kicked => Ok(false),
        _ => Ok(true),
    }
}

fn run_program<P: Platform>(
    p: &mut P,
    seed: u64,
    dog: &Watchdog<ArchOf<P>>,
    clock: fn() -> u64,
) -> Check {
    let vm = p
        .create_raw_vm(&random_program(seed, PROGRAM_BYTES))
        .map_err(|e| format!("create_raw_vm: {e}"))?;
    let layout = vm.layout();
    let mut v = vm
        .new_vcpu(0, vm.entry())
        .map_err(|e| format!("new vCPU: {e}"))?;
    v.bind().map_err(|e| format!("bind: {e}"))?;
    for _ in 0..MAX_EXITS {
        *dog.armed.lock() = Some((clock() + RUN_BUDGET_NS, v.handle()));
        let result = v.run();
        *dog.armed.lock() = None;
        let exit = match result {
            Ok(exit) => exit,
            Err(_) if v.state() == VCpuState::Invalid => return Ok(()),
            Err(e) => {
                return Err(format!(
                    "run() failed ({e}) but the vCPU is {:?}",
                    v.state()
                ))
            }
        };
        if !check_exit(&layout, &exit)? {
            return Ok(());
        }
        if matches!(
            exit,
            AxVCpuExitReason::MmioRead { .. }
                | AxVCpuExitReason::IoRead { .. }
                | AxVCpuExitReason::SysRegRead { .. }
        ) {
            v.complete_read(0)
                .map_err(|e| format!("complete_read: {e}"))?;
        }
    }
    Ok(())
}

pub(crate) fn garbage<P: Platform>(p: &mut P) -> Check {
    let wait = Waiter::of(p);
    let clock = wait.clock;
    let count = p.info().garbage_programs;
    let dog = Arc::new(Watchdog::<ArchOf<P>> {
        armed: spin::Mutex::new(None),
        stop: AtomicBool::new(false),
    });
    let dog_job = dog.clone();
    let watcher = p
        .spawn_on_cpu(1, Box::new(move || dog_job.watch(wait)))
        .map_err(|e| format!("spawn_on_cpu: {e}"))?;
    let mut result = Ok(());
    for i in 0..count as u64 {
        if let Err(why) = run_program(p, SEED.wrapping_add(i), &dog, clock) {
            result = Err(format!(
                "program {i} (seed {:#x}): {why}",
                SEED.wrapping_add(i)
            ));
            break;
        }
    }
    dog.stop.store(true, Ordering::Release);
    if !watcher.join() {
        return Err("the watchdog CPU did not finish".into());
    }
    result
}
