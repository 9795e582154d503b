//! Creating, running and dropping VMs gives every frame back.

use axvcpu::AxVCpuExitReason as E;
use axvcpu_conformance::contract::{GuestProgram, HC_DONE};
use axvcpu_conformance::TestVm;
use axvcpu_kvm::testing::KvmTestVm;
use axvcpu_kvm::{guests, HostedHal};

#[test]
fn no_frame_leaks_across_vm_lifetimes() {
    let before = HostedHal::live_frames();
    for round in 0..20 {
        let vm = KvmTestVm::new(
            round,
            guests::contract_program(GuestProgram::NestedPageFault).expect("program"),
        )
        .expect("vm");
        assert!(HostedHal::live_frames() > before);
        let mut v = vm.new_vcpu(0, vm.entry()).expect("vCPU");
        v.bind().expect("bind");
        assert!(matches!(v.run(), Ok(E::NestedPageFault { .. })));
        vm.make_writable(vm.layout().ro_page).expect("writable");
        v.nested_page_table_changed().expect("changed");
        assert!(matches!(v.run(), Ok(E::Hypercall { nr: HC_DONE, .. })));
        // Drop the VM first: its slots go, the vCPU outlives it safely.
        drop(vm);
        // Whatever the guest does now, it cannot reach the freed memory.
        let after = v.run();
        if round == 0 {
            println!("run() after the VM's memory went: {after:?}");
        }
        assert!(!matches!(after, Ok(E::Hypercall { .. })), "{after:?}");
    }
    assert_eq!(HostedHal::live_frames(), before);
}
