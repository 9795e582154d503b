//! Random bytes as guest code, many thousands of times: every run must end in an exit or an
//! `Err`, never a panic or a hang, exits must agree with the memory map, and no frame leaks.
//!
//! `AXVCPU_KVM_RANDOM_PROGRAMS` sets the number of programs (default 10,000);
//! `AXVCPU_KVM_RANDOM_SEED` the first seed.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axvcpu::{AxVCpu, AxVCpuExitReason as E, VCpuHandle, VCpuState};
use axvcpu_conformance::TestVm;
use axvcpu_kvm::testing::{KvmTestVm, RAM_BASE, RAM_SIZE, RO_PAGE};
use axvcpu_kvm::{HostedHal, KvmVCpu};

/// Bytes of random code per program.
const PROGRAM_BYTES: usize = 512;
/// Exits a program may take.
const MAX_EXITS: usize = 64;
/// How long one `run()` may take before the watchdog kicks it.
const RUN_BUDGET: Duration = Duration::from_millis(20);
/// vCPUs created in one VM before it is replaced (KVM never frees a vCPU before its VM).
const VCPUS_PER_VM: usize = 256;

type Arch = KvmVCpu<HostedHal>;

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

type Armed = Arc<Mutex<Option<(Instant, VCpuHandle<Arch>)>>>;

fn in_ram(addr: usize) -> bool {
    (RAM_BASE as usize..(RAM_BASE + RAM_SIZE) as usize).contains(&addr)
}

/// Runs one program on a fresh vCPU; returns how it ended.
fn run_program(
    vm: &KvmTestVm,
    vcpu_id: usize,
    armed: &Armed,
    exits: &mut BTreeMap<&'static str, usize>,
) -> Result<String, String> {
    let mut v: AxVCpu<Arch> = vm
        .new_vcpu(vcpu_id, vm.entry())
        .map_err(|e| format!("new vCPU: {e}"))?;
    v.bind().map_err(|e| format!("bind: {e}"))?;
    for _ in 0..MAX_EXITS {
        *armed.lock().expect("lock") = Some((Instant::now() + RUN_BUDGET, v.handle()));
        let result = v.run();
        *armed.lock().expect("lock") = None;
        let exit = match result {
            Ok(exit) => exit,
            Err(e) if v.state() == VCpuState::Invalid => return Ok(format!("Err({})", e.reason())),
            Err(e) => {
                return Err(format!(
                    "run() failed ({e}) but the vCPU is {:?}",
                    v.state()
                ))
            }
        };
        *exits.entry(exit.name()).or_default() += 1;
        match exit {
            E::MmioRead { addr, .. } | E::MmioWrite { addr, .. } if in_ram(addr.as_usize()) => {
                return Err(format!("MMIO exit at {addr:?}, inside RAM"))
            }
            E::NestedPageFault { addr, .. } if addr.as_usize() & !0xfff != RO_PAGE as usize => {
                return Err(format!(
                    "nested page fault at {addr:?}, outside the read-only page"
                ))
            }
            E::MmioRead { .. } | E::IoRead { .. } | E::SysRegRead { .. } => v
                .complete_read(0)
                .map_err(|e| format!("complete_read: {e}"))?,
            E::NestedPageFault { .. } | E::SystemDown | E::FailEntry { .. } | E::Kicked => {
                return Ok(exit.name().to_string())
            }
            _ => {}
        }
    }
    v.unbind().map_err(|e| format!("unbind: {e}"))?;
    Ok("exit budget".to_string())
}

#[test]
fn random_programs_end_in_exits_or_errors() {
    let count = env("AXVCPU_KVM_RANDOM_PROGRAMS", 10_000);
    let first_seed = env("AXVCPU_KVM_RANDOM_SEED", 0x5eed_0000);
    let frames_before = HostedHal::live_frames();
    let started = Instant::now();

    let armed: Armed = Arc::new(Mutex::new(None));
    let stop = Arc::new(AtomicBool::new(false));
    let (dog_armed, dog_stop) = (armed.clone(), stop.clone());
    let watchdog = std::thread::spawn(move || {
        let mut kicks = 0u64;
        while !dog_stop.load(Ordering::Acquire) {
            if let Some((deadline, handle)) = &*dog_armed.lock().expect("lock") {
                if Instant::now() > *deadline {
                    handle.kick();
                    kicks += 1;
                }
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        kicks
    });

    let mut endings: BTreeMap<String, usize> = BTreeMap::new();
    let mut exits = BTreeMap::new();
    let mut vm: Option<KvmTestVm> = None;
    let mut failure = None;
    for i in 0..count {
        let seed = first_seed.wrapping_add(i);
        let slot = (i as usize) % VCPUS_PER_VM;
        let code = axvcpu_conformance::random_program(seed, PROGRAM_BYTES);
        let reuse = slot != 0 && vm.is_some();
        if reuse {
            if let Some(vm) = &vm {
                vm.load(&code).expect("reload RAM");
            }
        } else {
            // The old VM goes first.
            drop(vm.take());
            vm = Some(KvmTestVm::new(1, &code).expect("VM"));
        }
        let Some(vm_ref) = &vm else { unreachable!() };
        match run_program(vm_ref, slot, &armed, &mut exits) {
            Ok(end) => *endings.entry(end).or_default() += 1,
            Err(why) => {
                failure = Some(format!("program {i} (seed {seed:#x}): {why}"));
                break;
            }
        }
    }
    drop(vm);
    stop.store(true, Ordering::Release);
    let kicks = watchdog.join().expect("watchdog");
    let elapsed = started.elapsed();
    println!("{count} random programs in {elapsed:.2?} ({kicks} watchdog kicks)");
    println!("how programs ended: {endings:#?}");
    println!("exits seen: {exits:#?}");
    if let Some(f) = failure {
        panic!("{f}");
    }
    assert_eq!(HostedHal::live_frames(), frames_before, "frames leaked");
}
