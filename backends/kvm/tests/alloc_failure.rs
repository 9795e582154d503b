//! Host failures, hosted: every frame allocation the create / setup / nested-page-table
//! paths of a KVM guest make is made to fail in turn (`axvcpu_conformance::alloc_fail`),
//! and each must give a clean `NoMemory` error, a droppable vCPU and no leaked frame.
//! (Its own test binary: the failure plan is process-wide.)

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use axvcpu::{AxVCpu, AxVCpuExitReason, AxVCpuHal, GuestPhysAddr, HostPhysAddr, VCpuResult};
use axvcpu_conformance::alloc_fail::{plan, sweep, FailingHal};
use axvcpu_kvm::boot::write_long_mode_tables;
use axvcpu_kvm::{
    HostFrames, HostedHal, KvmCreateConfig, KvmSetupConfig, KvmVCpu, KvmVm, KvmVmConfig, MapFlags,
    NestedPageTable, X86Npt,
};
use axvcpu_kvm_testkit::kvm;

type Hal = FailingHal<HostedHal>;

/// How many allocations the last build had made when its vCPU was set up.
static SET_UP_AFTER: AtomicUsize = AtomicUsize::new(usize::MAX);

const RAM_BASE: u64 = 0x10_0000;
const RAM_FRAMES: usize = 16;
const ENTRY: u64 = RAM_BASE + 0x8000;
/// A 2 MiB-aligned block of host memory mapped at a 2 MiB-aligned guest address, so the
/// table maps it with one large leaf, which `protect` on one page of it must split.
const BIG_GPA: u64 = 0x4000_0000;
const BIG_FRAMES: usize = 512;
/// A far page, in another 1 GiB and another 512 GiB region's tables than RAM.
const FAR_GPA: u64 = 0x80_4000_0000;
const RWX: MapFlags = MapFlags::READ
    .union(MapFlags::WRITE)
    .union(MapFlags::EXECUTE);

/// Everything one build makes, torn down in the order memory safety needs: the vCPU, then
/// the VM's memory slots, then the table, then the memory.
struct Guest {
    vcpu: Option<AxVCpu<KvmVCpu<Hal>>>,
    vm: Option<Arc<KvmVm>>,
    npt: Option<NestedPageTable<Hal, X86Npt>>,
    ram: HostFrames,
    big: Option<HostPhysAddr>,
}

impl Drop for Guest {
    fn drop(&mut self) {
        self.vcpu.take();
        if let Some(vm) = self.vm.take() {
            if vm.unmap_all().is_err() {
                // KVM may still map them: never give them back.
                self.ram.leak();
                self.big = None;
            }
        }
        self.npt.take();
        if let Some(big) = self.big.take() {
            HostedHal::dealloc_contiguous_frames(big, BIG_FRAMES);
        }
    }
}

/// Builds a guest whose table allocates through [`Hal`] (guest memory comes from the
/// plain [`HostedHal`]: the harness's, not the backend's), creates and sets up a vCPU,
/// changes the table under it, and runs it to its `hlt`.
fn build() -> VCpuResult<Guest> {
    let mut g = Guest {
        vcpu: None,
        vm: None,
        npt: None,
        ram: HostFrames::new(RAM_FRAMES)?,
        big: None,
    };
    let mut image = vec![0u8; RAM_FRAMES * 4096];
    let boot = write_long_mode_tables(&mut image, RAM_BASE, RAM_BASE)?;
    image[(ENTRY - RAM_BASE) as usize] = 0xf4; // hlt
    g.ram.write(0, &image)?;
    g.big = Some(
        HostedHal::alloc_contiguous_frames(BIG_FRAMES, BIG_FRAMES)
            .ok_or(axvcpu::VCpuError::bad_state("test: no 2 MiB block"))?,
    );

    let npt = g.npt.insert(NestedPageTable::new()?);
    let gpa = |a: u64| GuestPhysAddr::from(a as usize);
    npt.map(gpa(RAM_BASE), g.ram.paddr(), g.ram.len(), RWX)?;
    if let Some(big) = g.big {
        npt.map(gpa(BIG_GPA), big, BIG_FRAMES * 4096, RWX)?;
    }
    let root = npt.root_paddr();
    let vm = g.vm.insert(KvmVm::new(
        kvm()?,
        KvmVmConfig {
            trapped_msrs: Vec::new(),
        },
    )?);
    let builder = AxVCpu::<KvmVCpu<Hal>>::builder(0, 0, KvmCreateConfig { vm: vm.clone() })?;
    // SAFETY: `root` is the live table in `g`, which outlives the vCPU (`Guest::drop`
    // drops the vCPU and the VM's slots first).
    let vcpu = g
        .vcpu
        .insert(
            unsafe { builder.ept_root(root) }
                .entry(gpa(ENTRY))
                .setup(KvmSetupConfig {
                    boot,
                    stack_top: RAM_BASE + (RAM_FRAMES * 4096) as u64,
                })?,
        );

    SET_UP_AFTER.store(plan::allocations(), Ordering::SeqCst);

    // Table changes under a set-up vCPU: a split of the large leaf, and a far page.
    if let Some(npt) = g.npt.as_mut() {
        npt.protect(gpa(BIG_GPA + 0x1000), 4096, MapFlags::READ)?;
        npt.map(gpa(FAR_GPA), g.ram.paddr(), 4096, MapFlags::READ)?;
    }
    vcpu.nested_page_table_changed()?;
    vcpu.bind()?;
    let exit = vcpu.run()?;
    vcpu.unbind()?;
    if exit != AxVCpuExitReason::Halt {
        return Err(axvcpu::VCpuError::bad_state("test: the guest did not halt"));
    }
    Ok(g)
}

#[test]
fn every_frame_allocation_failure_is_a_clean_error() {
    let frames = HostedHal::live_frames();
    let report = sweep(build).unwrap();
    println!(
        "{} allocation points on KVM (create, setup, nested page table):",
        report.points
    );
    for (n, e) in report.errors.iter().enumerate() {
        println!("  allocation {} failing: {e}", n + 1);
    }
    // Before the vCPU: the table root, PDPT, PD and PT for RAM, a PD for the large block.
    // Creating and setting up a KVM vCPU takes no frames. With the vCPU set up: the
    // split's PT, a PDPT, PD and PT for the far page; each of these fails with a live vCPU,
    // which the failed build drops.
    assert_eq!(report.points, 9);
    assert_eq!(SET_UP_AFTER.load(Ordering::SeqCst), 5);
    assert_eq!(HostedHal::live_frames(), frames, "frames leaked");
}
