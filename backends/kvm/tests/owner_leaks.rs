//! A `HostedVm` gives every frame back when dropped. (The only test of this binary: it
//! counts the process's frames exactly.)

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use axvcpu_kvm::{AxVCpuExitReason, HostedHal, HostedVm};

/// Frames of one VM: 64 KiB of RAM, a 2-page read-only region, 16 KiB of extra RAM, and
/// the nested page table's PML4, PDPT, PD and one PT (everything lies in the first 2 MiB).
const VM_FRAMES: usize = 16 + 2 + 4 + 4;

#[test]
fn a_hosted_vm_frees_every_frame() {
    let before = HostedHal::live_frames();
    for round in 0..10 {
        let vm = HostedVm::new(0x1_0000, 0x1_0000).expect("vm");
        vm.map_read_only(0x4_0000, &[0x90; 5000])
            .expect("read-only");
        vm.map_ram(0x8_0000, 0x4000).expect("ram");
        assert_eq!(
            HostedHal::live_frames(),
            before + VM_FRAMES,
            "round {round}"
        );
        vm.load(0x1_8000, &[0xf4]).expect("load"); // hlt
        let mut vcpu = vm.new_vcpu(0, 0x1_8000, 0x2_0000).expect("vCPU");
        vcpu.bind().expect("bind");
        assert_eq!(vcpu.run().expect("run"), AxVCpuExitReason::Halt);
        // vCPUs and memory slots take no frames of the HAL.
        assert_eq!(HostedHal::live_frames(), before + VM_FRAMES);
        drop(vcpu);
        drop(vm);
        assert_eq!(HostedHal::live_frames(), before, "round {round}");
    }
}
