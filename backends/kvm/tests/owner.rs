//! `HostedVm`, the safe owner of a hosted guest: memory, loading, vCPUs, vCPU ids, and
//! waiting for a halted vCPU without polling.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use axvcpu_kvm::axvcpu::{AccessFlags, AxErrorKind};
use axvcpu_kvm::{wait_while_blocked, AxVCpuExitReason as Exit, HostedVm, VCpuState};

const RAM: u64 = 0x1_0000;
const RAM_SIZE: usize = 0x4_0000;
const ENTRY: u64 = 0x2_0000;
const STACK: u64 = RAM + RAM_SIZE as u64;
const HLT: [u8; 1] = [0xf4];

fn vm_with(code: &[u8]) -> HostedVm {
    let vm = HostedVm::new(RAM, RAM_SIZE).expect("vm");
    vm.load(ENTRY, code).expect("load");
    vm
}

#[test]
fn a_store_to_read_only_memory_faults_and_completes_once_writable() {
    // mov edi, 0x60000; mov dword [rdi], 0x1234; hlt
    let code = [
        0xbf, 0x00, 0x00, 0x06, 0x00, 0xc7, 0x07, 0x34, 0x12, 0x00, 0x00, 0xf4,
    ];
    let vm = vm_with(&code);
    vm.map_read_only(0x6_0000, b"rom").expect("read-only");
    let mut vcpu = vm.new_vcpu(0, ENTRY, STACK).expect("vCPU");
    vcpu.bind().expect("bind");
    match vcpu.run().expect("run") {
        Exit::NestedPageFault { addr, access_flags } => {
            assert_eq!(addr.as_usize(), 0x6_0000);
            assert!(access_flags.contains(AccessFlags::WRITE));
        }
        other => panic!("expected a nested page fault, got {other:?}"),
    }
    vm.set_writable(0x6_0000, 0x1000, true).expect("writable");
    assert_eq!(vcpu.run().expect("run"), Exit::Halt);
    let mut stored = [0u8; 4];
    vm.read(0x6_0000, &mut stored).expect("read");
    assert_eq!(u32::from_le_bytes(stored), 0x1234);
}

#[test]
fn unmapped_memory_is_mmio_and_extra_ram_is_ram() {
    // mov edi, 0x80000; mov dword [rdi], 0x1234; mov edi, 0xc0000; mov eax, [rdi]; hlt
    let code = [
        0xbf, 0x00, 0x00, 0x08, 0x00, 0xc7, 0x07, 0x34, 0x12, 0x00, 0x00, 0xbf, 0x00, 0x00, 0x0c,
        0x00, 0x8b, 0x07, 0xf4,
    ];
    let vm = vm_with(&code);
    vm.map_ram(0x8_0000, 0x1000).expect("ram");
    let mut vcpu = vm.new_vcpu(0, ENTRY, STACK).expect("vCPU");
    vcpu.bind().expect("bind");
    match vcpu.run().expect("run") {
        Exit::MmioRead { addr, .. } => assert_eq!(addr.as_usize(), 0xc_0000),
        other => panic!("expected an MMIO read of the hole, got {other:?}"),
    }
    vcpu.complete_read(7).expect("complete");
    assert_eq!(vcpu.run().expect("run"), Exit::Halt);
    let mut stored = [0u8; 4];
    vm.read(0x8_0000, &mut stored).expect("read");
    assert_eq!(u32::from_le_bytes(stored), 0x1234);
}

#[test]
fn bad_layouts_and_loads_are_refused() {
    let e = HostedVm::new(0x1_0800, RAM_SIZE).unwrap_err();
    assert_eq!(e.kind(), AxErrorKind::InvalidInput, "{e}");
    let e = HostedVm::new(RAM, 0x1000).unwrap_err(); // too small for the boot tables
    assert_eq!(e.kind(), AxErrorKind::InvalidInput, "{e}");
    let vm = vm_with(&HLT);
    let e = vm.load(RAM, &HLT).unwrap_err();
    assert!(e.reason().contains("boot tables"), "{e}");
    assert!(vm.load(STACK - 1, &[0, 0]).is_err(), "past the end of RAM");
    assert!(vm.map_ram(RAM + 0x1000, 0x1000).is_err(), "overlaps RAM");
    assert!(
        vm.read(0xd000_0000, &mut [0]).is_err(),
        "MMIO is not memory"
    );
    assert_eq!(vm.boot_tables().start, RAM);
    assert!(vm.boot_tables().end <= ENTRY);
}

#[test]
fn a_vcpu_id_is_used_once_per_vm() {
    let vm = vm_with(&HLT);
    let first = vm.new_vcpu(0, ENTRY, STACK).expect("vCPU 0");
    let e = vm.new_vcpu(0, ENTRY, STACK).unwrap_err();
    assert_eq!(e.kind(), AxErrorKind::ResourceBusy, "{e}");
    drop(first);
    // KVM keeps the vCPU until the VM goes: the id stays taken, and the error says why.
    let e = vm.new_vcpu(0, ENTRY, STACK).unwrap_err();
    assert_eq!(e.kind(), AxErrorKind::ResourceBusy, "{e}");
    assert!(e.reason().contains("EEXIST (File exists)"), "{e}");
    assert!(e.reason().contains("already used"), "{e}");
    assert_eq!(e.value(), Some(0));
    // Another id, or the same id in another VM, is fine.
    vm.new_vcpu(1, ENTRY, STACK - 0x1000).expect("vCPU 1");
    vm_with(&HLT)
        .new_vcpu(0, ENTRY, STACK)
        .expect("vCPU 0 of another VM");
}

#[test]
fn a_halted_vcpu_is_woken_by_an_injection_on_another_thread() {
    let vm = vm_with(&HLT); // interrupts stay disabled: the guest never takes the vector
    let mut vcpu = vm.new_vcpu(0, ENTRY, STACK).expect("vCPU");
    vcpu.bind().expect("bind");
    assert_eq!(vcpu.run().expect("run"), Exit::Halt);
    assert_eq!(vcpu.state(), VCpuState::Blocked);
    let handle = vcpu.handle();
    let delay = Duration::from_millis(100);
    let started = Instant::now();
    std::thread::scope(|s| {
        s.spawn(|| {
            std::thread::sleep(delay);
            handle.inject_interrupt(0x40).expect("inject");
        });
        // Far longer than the delay: only the injection can end the wait in time.
        assert!(vcpu.wait_while_blocked(Duration::from_secs(3600)));
    });
    assert!(started.elapsed() >= delay, "returned before the injection");
    assert_eq!(vcpu.state(), VCpuState::Ready);
    // Not Blocked: at once.
    assert!(wait_while_blocked(&vcpu.handle(), Duration::ZERO));
}

#[test]
fn waiting_for_a_vcpu_nobody_wakes_times_out() {
    let vm = vm_with(&HLT);
    let mut vcpu = vm.new_vcpu(0, ENTRY, STACK).expect("vCPU");
    vcpu.bind().expect("bind");
    assert_eq!(vcpu.run().expect("run"), Exit::Halt);
    let timeout = Duration::from_millis(50);
    let started = Instant::now();
    assert!(!vcpu.wait_while_blocked(timeout));
    assert!(started.elapsed() >= timeout);
    assert_eq!(vcpu.state(), VCpuState::Blocked);
    // Woken while nobody waits: the next wait returns at once.
    vcpu.handle().inject_interrupt(0x40).expect("inject");
    assert!(vcpu.wait_while_blocked(Duration::ZERO));
}

#[test]
fn two_vcpus_of_one_vm_run_on_two_threads() {
    let vm = vm_with(&HLT);
    std::thread::scope(|s| {
        for id in 0..2 {
            let vm = &vm;
            s.spawn(move || {
                let mut vcpu = vm
                    .new_vcpu(id, ENTRY, STACK - id as u64 * 0x1000)
                    .expect("vCPU");
                vcpu.bind().expect("bind");
                assert_eq!(vcpu.run().expect("run"), Exit::Halt);
                assert_eq!(vcpu.id().vm_id, vm.vm_id());
                vcpu.unbind().expect("unbind");
            });
        }
    });
}
