//! Exit round trips through `AxVCpu<KvmVCpu<HostedHal>>` against the same guest on raw
//! kvm-ioctls with the same sync-regs setup; then how long a kick takes to bring a spinning
//! guest out of `run()`.
//!
//! `cargo bench -p axvcpu-kvm --bench exits` (`AXVCPU_KVM_BENCH_ROUNDS` round trips per side
//! and exit kind, default 100,000; `AXVCPU_KVM_BENCH_KICKS` kicks, default 20, 0 for none).
//! The two sides run alternately in 20 blocks and each reports its median block, so load
//! from other processes hits both alike.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axvcpu::{AxVCpu, AxVCpuExitReason as E, VCpuError, VCpuResult, VCpuState};
use axvcpu_conformance::contract::GuestProgram;
use axvcpu_conformance::TestVm;
use axvcpu_kvm::{boot, KvmVCpu};
use axvcpu_kvm_testkit::{guests, KvmTestVm, ENTRY};
use kvm_bindings::kvm_regs;
use kvm_ioctls::{SyncReg, VcpuExit, VcpuFd};

const BLOCKS: u64 = 20;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Pio,
    MmioRead,
    MmioWrite,
    Hypercall,
}

fn program(kind: Kind) -> &'static [u8] {
    match kind {
        Kind::Pio => guests::pio_loop(),
        Kind::MmioRead => guests::mmio_read_loop(),
        Kind::MmioWrite => guests::mmio_write_loop(),
        Kind::Hypercall => guests::hypercall_loop(),
    }
}

/// One round trip through `AxVCpu`, answering the exit as a hypervisor would.
fn ours(v: &mut AxVCpu<KvmVCpu>) -> VCpuResult {
    match v.run()? {
        E::MmioRead { .. } => v.complete_read(0x1234),
        E::Hypercall { .. } => v.set_return_value(0),
        E::IoWrite { .. } | E::MmioWrite { .. } => Ok(()),
        other => {
            Err(VCpuError::unsupported("unexpected exit")
                .with_value(format!("{other:?}").len() as u64))
        }
    }
}

/// One round trip on raw kvm-ioctls: registers read from the kvm_run page after each exit,
/// written back (dirty) to return a hypercall value.
fn raw(fd: &mut VcpuFd, regs: &mut kvm_regs) -> VCpuResult {
    let hypercall = match fd.run() {
        Ok(VcpuExit::IoOut(0xf6, _)) => true,
        Ok(VcpuExit::IoOut(..)) | Ok(VcpuExit::MmioWrite(..)) => false,
        Ok(VcpuExit::MmioRead(_, data)) => {
            let n = data.len().min(8);
            data[..n].copy_from_slice(&0x1234u64.to_le_bytes()[..n]);
            false
        }
        _ => return Err(VCpuError::unsupported("unexpected raw exit")),
    };
    *regs = fd.sync_regs_mut().regs;
    if hypercall {
        regs.rax = 0;
        fd.sync_regs_mut().regs = *regs;
        fd.set_sync_dirty_reg(SyncReg::Register);
    }
    Ok(())
}

fn raw_vcpu(vm: &KvmTestVm) -> VCpuResult<VcpuFd> {
    let e = |_| VCpuError::unsupported("raw vCPU setup");
    let kvm_vm = vm.kvm_vm();
    let mut fd = kvm_vm.vm_fd().create_vcpu(7).map_err(e)?;
    fd.set_cpuid2(kvm_vm.cpuid()).map_err(e)?;
    let mut sregs = fd.get_sregs().map_err(e)?;
    boot::long_mode_sregs(&mut sregs, &vm.setup_config(0).boot);
    fd.set_sregs(&sregs).map_err(e)?;
    fd.set_sync_valid_reg(SyncReg::Register);
    fd.set_sync_valid_reg(SyncReg::VcpuEvents);
    fd.sync_regs_mut().regs = kvm_regs {
        rip: ENTRY,
        rsp: vm.setup_config(0).stack_top,
        rflags: 2,
        ..Default::default()
    };
    fd.set_sync_dirty_reg(SyncReg::Register);
    Ok(fd)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// (ours ns, raw ns, ioctls per exit) for one exit kind.
fn measure(kind: Kind, rounds: u64) -> VCpuResult<(f64, f64, f64)> {
    let ours_vm = KvmTestVm::new(0, program(kind))?;
    let mut v = ours_vm.new_vcpu(0, ours_vm.entry())?;
    v.bind()?;
    let raw_vm = KvmTestVm::new(1, program(kind))?;
    // A set-up (never run) backend vCPU makes this VM mirror its nested page table into
    // memory slots too: both sides run on identical VMs.
    let _slots = raw_vm.new_vcpu(0, raw_vm.entry())?;
    let mut fd = raw_vcpu(&raw_vm)?;
    let mut regs = kvm_regs::default();
    for _ in 0..2000 {
        ours(&mut v)?;
        raw(&mut fd, &mut regs)?;
    }
    let per_block = (rounds / BLOCKS).max(1);
    let ioctls = v.arch().ioctl_count();
    let (mut a, mut r) = (Vec::new(), Vec::new());
    for block in 0..BLOCKS {
        // Alternate which side goes first, so neither always follows the other.
        for side in [block % 2, 1 - block % 2] {
            let t = Instant::now();
            for _ in 0..per_block {
                if side == 0 {
                    ours(&mut v)?;
                } else {
                    raw(&mut fd, &mut regs)?;
                }
            }
            let ns = t.elapsed().as_nanos() as f64 / per_block as f64;
            if side == 0 {
                a.push(ns)
            } else {
                r.push(ns)
            }
        }
    }
    let per_exit = (v.arch().ioctl_count() - ioctls) as f64 / (per_block * BLOCKS) as f64;
    v.unbind()?;
    Ok((median(a), median(r), per_exit))
}

/// Kicks a guest spinning with interrupts off `kicks` times, from another thread; returns
/// the times from `kick()` to `run()` returning `Kicked`, sorted.
fn kick_latencies(kicks: usize) -> VCpuResult<Vec<Duration>> {
    let spin = guests::contract_program(GuestProgram::Spin)
        .ok_or(VCpuError::unsupported("no spin program"))?;
    let vm = KvmTestVm::new(2, spin)?;
    let mut v = vm.new_vcpu(0, vm.entry())?;
    v.bind()?;
    let mut latencies = Vec::with_capacity(kicks);
    for _ in 0..kicks {
        let handle = v.handle();
        let kicked_at = Arc::new(Mutex::new(None::<Instant>));
        let at = kicked_at.clone();
        let kicker = std::thread::spawn(move || {
            while handle.state() != VCpuState::Running {
                std::hint::spin_loop();
            }
            std::thread::sleep(Duration::from_millis(2));
            *at.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
            handle.kick();
        });
        let exit = v.run()?;
        let returned = Instant::now();
        kicker
            .join()
            .map_err(|_| VCpuError::unsupported("the kicker thread panicked"))?;
        if exit != E::Kicked {
            return Err(VCpuError::unsupported(
                "a spinning guest left run() without a kick",
            ));
        }
        let at = kicked_at.lock().unwrap_or_else(|e| e.into_inner());
        latencies.push(returned.duration_since(at.unwrap_or(returned)));
    }
    v.unbind()?;
    latencies.sort();
    Ok(latencies)
}

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() -> VCpuResult {
    let rounds = env("AXVCPU_KVM_BENCH_ROUNDS", 100_000);
    println!("{rounds} round trips per side and kind, median of {BLOCKS} alternating blocks");
    println!(
        "{:<11} {:>10} {:>10} {:>8} {:>12}",
        "exit", "axvcpu ns", "raw ns", "vs raw", "ioctls/exit"
    );
    let mut results = Vec::new();
    for kind in [Kind::Pio, Kind::MmioRead, Kind::MmioWrite, Kind::Hypercall] {
        let (a, r, per_exit) = measure(kind, rounds)?;
        println!(
            "{:<11} {a:>10.0} {r:>10.0} {:>8.3} {per_exit:>12.2}",
            format!("{kind:?}"),
            a / r
        );
        results.push((kind, a, r));
    }
    let (pio, raw_pio) = (results[0].1, results[0].2);
    println!("relative to PIO:      axvcpu      raw");
    for (kind, a, r) in &results[1..] {
        println!(
            "{:<17} {:>10.3} {:>8.3}",
            format!("{kind:?}"),
            a / pio,
            r / raw_pio
        );
    }
    let kicks = env("AXVCPU_KVM_BENCH_KICKS", 20) as usize;
    if kicks == 0 {
        return Ok(());
    }
    let kicks = kick_latencies(kicks)?;
    println!(
        "kick -> run() returned Kicked, guest spinning with IF=0: median {:.1?}, max {:.1?} ({} kicks)",
        kicks[kicks.len() / 2],
        kicks[kicks.len() - 1],
        kicks.len()
    );
    Ok(())
}
