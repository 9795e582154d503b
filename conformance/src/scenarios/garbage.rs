//! `garbage`: random bytes as guest code. Every run must end in a defined exit or an error,
//! exits must be consistent with the guest's memory map, and the host must survive.

use alloc::format;
use alloc::vec::Vec;

use axvcpu::AxVCpuExitReason;

use super::wild::{check_exit, start_watchdog, DogOf, Rng, RUN_BUDGET_NS};
use super::Check;
use crate::{Platform, TestVm};

/// Bytes of random code per program.
const PROGRAM_BYTES: usize = 256;
/// Exits a program may take before it is abandoned.
const MAX_EXITS: usize = 32;
/// The seed of program 0; program `i` uses `SEED + i`.
pub const SEED: u64 = 0x0005_eed0_fa11_c0de;

/// `len` random bytes from `seed` (xorshift64*: enough randomness for instruction soup,
/// reproducible from the seed). Backends' own random-guest tests use it too.
pub fn random_program(seed: u64, len: usize) -> Vec<u8> {
    let mut rng = Rng::new(seed);
    (0..len).map(|_| rng.byte()).collect()
}

fn run_program<P: Platform>(p: &mut P, seed: u64, dog: &DogOf<P>) -> Check {
    let vm = p
        .create_raw_vm(&random_program(seed, PROGRAM_BYTES))
        .map_err(|e| format!("create_raw_vm: {e}"))?;
    let layout = vm.layout();
    let mut v = vm
        .new_vcpu(0, vm.entry())
        .map_err(|e| format!("new vCPU: {e}"))?;
    v.bind().map_err(|e| format!("bind: {e}"))?;
    for _ in 0..MAX_EXITS {
        let Ok(exit) = dog.run(&mut v, RUN_BUDGET_NS)? else {
            return Ok(());
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
    let count = p.info().garbage_programs;
    let (dog, watcher) = start_watchdog(p)?;
    let mut result = Ok(());
    for i in 0..count as u64 {
        if let Err(why) = run_program(p, SEED.wrapping_add(i), &dog) {
            result = Err(format!(
                "program {i} (seed {:#x}): {why}",
                SEED.wrapping_add(i)
            ));
            break;
        }
    }
    dog.stop(watcher)?;
    result
}
