//! Creating, running and dropping VMs gives every frame back. (The only test of this
//! binary: it counts the process's frames exactly.)

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use axvcpu::AxVCpuExitReason as E;
use axvcpu_conformance::contract::{GuestProgram, HC_DONE};
use axvcpu_conformance::TestVm;
use axvcpu_kvm::HostedHal;
use axvcpu_kvm_testkit::guests;
use axvcpu_kvm_testkit::{KvmTestVm, RAM_SIZE};

/// Frames one test VM holds: its RAM, the read-only page, and the nested page table's
/// PML4, PDPT, PD and one PT (everything it maps lies in the first 2 MiB).
const VM_FRAMES: usize = RAM_SIZE as usize / 4096 + 1 + 4;

#[test]
fn no_frame_leaks_across_vm_lifetimes() {
    let before = HostedHal::live_frames();
    for round in 0..20 {
        let vm = KvmTestVm::new(
            round,
            guests::contract_program(GuestProgram::NestedPageFault).expect("program"),
        )
        .expect("vm");
        assert_eq!(HostedHal::live_frames(), before + VM_FRAMES);
        let mut v = vm.new_vcpu(0, vm.entry()).expect("vCPU");
        v.bind().expect("bind");
        assert!(matches!(v.run(), Ok(E::NestedPageFault { .. })));
        vm.make_writable(vm.layout().ro_page).expect("writable");
        v.nested_page_table_changed().expect("changed");
        assert!(matches!(v.run(), Ok(E::Hypercall { nr: HC_DONE, .. })));
        // vCPUs and slots take no frames of the HAL.
        assert_eq!(HostedHal::live_frames(), before + VM_FRAMES);
        // Drop the VM first: its slots go, the vCPU outlives it safely.
        drop(vm);
        assert_eq!(HostedHal::live_frames(), before);
        // Whatever the guest does now, it cannot reach the freed memory.
        let after = v.run();
        assert!(!matches!(after, Ok(E::Hypercall { .. })), "{after:?}");
    }
    assert_eq!(HostedHal::live_frames(), before);
}
