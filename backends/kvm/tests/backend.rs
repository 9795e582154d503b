//! The KVM backend on the real /dev/kvm: every exit kind, kicks, interrupts, nested page
//! faults, and refused misuse.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axvcpu::{
    AccessFlags, AccessWidth, AxArchPerCpu, AxArchVCpu, AxErrorKind, AxVCpu, AxVCpuExitReason as E,
    GuestPhysAddr, Port, SysRegAddr, VCpuKick, VCpuState,
};
use axvcpu_conformance::contract::{self as c, GuestProgram};
use axvcpu_conformance::TestVm;
use axvcpu_kvm::{KvmCreateConfig, KvmPerCpu, KvmVCpu, KvmVm, KvmVmConfig};
use axvcpu_kvm_testkit::guests::{self, STRING_IO_PORT};
use axvcpu_kvm_testkit::{kvm, KvmTestVm, ENTRY, IRQ_VECTOR, MMIO_BASE, RO_PAGE, SYSREG_MSR};

type VCpu = AxVCpu<KvmVCpu>;

fn start(code: &[u8]) -> (KvmTestVm, VCpu) {
    let vm = KvmTestVm::new(1, code).expect("test VM");
    let mut v = vm.new_vcpu(0, vm.entry()).expect("vCPU");
    v.bind().expect("bind");
    (vm, v)
}

fn contract(p: GuestProgram) -> &'static [u8] {
    guests::contract_program(p).expect("x86 program")
}

fn run(v: &mut VCpu) -> E {
    v.run().expect("run")
}

fn done(v: &mut VCpu) {
    match run(v) {
        E::Hypercall { nr: c::HC_DONE, .. } => {}
        other => panic!("expected HC_DONE, got {other:?}"),
    }
}

fn report(v: &mut VCpu) -> u64 {
    match run(v) {
        E::Hypercall {
            nr: c::HC_REPORT,
            args,
        } => args[0],
        other => panic!("expected HC_REPORT, got {other:?}"),
    }
}

/// Runs once and checks the exit took exactly one ioctl (KVM_RUN).
fn run_one_ioctl(v: &mut VCpu) -> E {
    let before = v.arch().ioctl_count();
    let exit = run(v);
    assert_eq!(v.arch().ioctl_count() - before, 1, "ioctls for {exit:?}");
    exit
}

#[test]
fn port_io_and_hypercalls_cost_one_ioctl_each() {
    let (_vm, mut v) = start(contract(GuestProgram::IoOut));
    for (i, (w, data)) in [AccessWidth::Byte, AccessWidth::Word, AccessWidth::Dword]
        .into_iter()
        .zip(c::IO_OUT_DATA)
        .enumerate()
    {
        let port = Port(c::IO_PORT + 2 * i as u16);
        assert_eq!(
            run_one_ioctl(&mut v),
            E::IoWrite {
                port,
                width: w,
                data
            }
        );
    }
    done(&mut v);

    drop(v);
    let (_vm, mut v) = start(contract(GuestProgram::IoIn));
    for (i, w) in [AccessWidth::Byte, AccessWidth::Word, AccessWidth::Dword]
        .into_iter()
        .enumerate()
    {
        let port = Port(c::IO_PORT + 2 * i as u16);
        assert_eq!(run_one_ioctl(&mut v), E::IoRead { port, width: w });
        v.complete_read(c::IO_IN_VALUE).expect("complete");
        let want = match w {
            AccessWidth::Dword => c::IO_IN_VALUE & w.mask(),
            _ => (c::IO_IN_RAX_BEFORE & !w.mask()) | (c::IO_IN_VALUE & w.mask()),
        };
        assert_eq!(report(&mut v), want);
    }
    done(&mut v);

    drop(v);
    let (_vm, mut v) = start(contract(GuestProgram::Hypercall));
    assert_eq!(
        run_one_ioctl(&mut v),
        E::Hypercall {
            nr: c::HYPERCALL_NR,
            args: c::HYPERCALL_ARGS
        }
    );
    v.set_return_value(c::HYPERCALL_RET as usize).expect("ret");
    // The return value rides in the synced registers: still one ioctl.
    let before = v.arch().ioctl_count();
    assert_eq!(report(&mut v), c::HYPERCALL_RET);
    assert_eq!(v.arch().ioctl_count() - before, 1);
    done(&mut v);
}

#[test]
fn string_io_is_reported_one_element_per_exit() {
    let (_vm, mut v) = start(guests::string_io());
    let runs = v.arch().run_count();
    for data in [0x11, 0x22, 0x33] {
        assert_eq!(
            run(&mut v),
            E::IoWrite {
                port: Port(STRING_IO_PORT),
                width: AccessWidth::Byte,
                data
            }
        );
    }
    // KVM may hand the string over whole or element by element.
    assert!(v.arch().run_count() - runs <= 3);
    for value in [0x1234, 0xabcd_5678] {
        assert_eq!(
            run(&mut v),
            E::IoRead {
                port: Port(STRING_IO_PORT),
                width: AccessWidth::Word
            }
        );
        v.complete_read(value).expect("complete");
    }
    assert_eq!(report(&mut v), 0x5678_1234);
    done(&mut v);
}

#[test]
fn mmio_accesses() {
    let (_vm, mut v) = start(contract(GuestProgram::MmioWrite));
    for (i, (w, data)) in [
        AccessWidth::Byte,
        AccessWidth::Word,
        AccessWidth::Dword,
        AccessWidth::Qword,
    ]
    .into_iter()
    .zip(c::MMIO_WRITE_DATA)
    .enumerate()
    {
        let addr = GuestPhysAddr::from(MMIO_BASE as usize + 8 * i);
        assert_eq!(
            run_one_ioctl(&mut v),
            E::MmioWrite {
                addr,
                width: w,
                data
            }
        );
    }
    done(&mut v);

    drop(v);
    let (_vm, mut v) = start(contract(GuestProgram::MmioRead));
    for (off, size, signed) in c::MMIO_READS {
        let w = AccessWidth::from_size(size).expect("width");
        assert_eq!(
            run_one_ioctl(&mut v),
            E::MmioRead {
                addr: GuestPhysAddr::from(MMIO_BASE as usize + off),
                width: w,
                reg: None,
                reg_width: w,
                signed_ext: false
            }
        );
        v.complete_read(c::MMIO_READ_VALUE).expect("complete");
        let want = if signed {
            w.sign_extend(c::MMIO_READ_VALUE)
        } else {
            c::MMIO_READ_VALUE & w.mask()
        };
        assert_eq!(report(&mut v), want, "{size}-byte load, signed {signed}");
    }
    done(&mut v);
}

#[test]
fn halt_power_and_system_registers() {
    let (_vm, mut v) = start(contract(GuestProgram::Halt));
    assert_eq!(run_one_ioctl(&mut v), E::Halt);
    assert_eq!(v.state(), VCpuState::Blocked);
    assert_eq!(v.pc().expect("pc"), ENTRY as usize + 1);
    done(&mut v);

    drop(v);
    let (_vm, mut v) = start(contract(GuestProgram::SystemDown));
    assert_eq!(run(&mut v), E::SystemDown);
    drop(v);
    let (_vm, mut v) = start(guests::triple_fault());
    assert_eq!(run(&mut v), E::SystemDown);

    drop(v);
    let (_vm, mut v) = start(contract(GuestProgram::SysReg));
    assert_eq!(
        run_one_ioctl(&mut v),
        E::SysRegRead {
            addr: SysRegAddr(SYSREG_MSR as usize),
            reg: 0
        }
    );
    v.complete_read(c::SYSREG_READ_VALUE).expect("complete");
    assert_eq!(report(&mut v), c::SYSREG_READ_VALUE);
    assert_eq!(
        run(&mut v),
        E::SysRegWrite {
            addr: SysRegAddr(SYSREG_MSR as usize),
            value: c::SYSREG_WRITE_VALUE
        }
    );
    done(&mut v);
}

#[test]
fn apic_icr_writes_start_cpus_and_send_ipis() {
    let (_vm, mut v) = start(contract(GuestProgram::CpuUp));
    match run(&mut v) {
        E::CpuUp {
            target_cpu: 1,
            entry_point,
            arg: 0,
        } => {
            let e = entry_point.as_usize() as u64;
            assert!(
                e > ENTRY && e % 4096 == 0 && e < 0x10_0000,
                "{entry_point:?}"
            );
        }
        other => panic!("expected CpuUp, got {other:?}"),
    }
    // The second SIPI of INIT-SIPI-SIPI is absorbed.
    done(&mut v);

    drop(v);
    let (_vm, mut v) = start(guests::send_ipi());
    assert_eq!(
        run(&mut v),
        E::SendIPI {
            target_cpu: 2,
            target_cpu_aux: 0,
            send_to_all: false,
            send_to_self: false,
            vector: 0x55
        }
    );
    done(&mut v);
}

#[test]
fn an_instruction_kvm_cannot_emulate_is_an_unsupported_error() {
    // The guest jumps to MMIO: KVM cannot fetch the instruction, its emulator gives up.
    let (_vm, mut v) = start(guests::unemulated());
    let e = v.run().expect_err("KVM cannot run code from MMIO");
    assert_eq!(e.kind(), AxErrorKind::Unsupported, "{e}");
    assert!(e.reason().starts_with("KVM_EXIT_INTERNAL_ERROR"), "{e}");
    assert_eq!(
        e.value(),
        Some(u64::from(kvm_bindings::KVM_INTERNAL_ERROR_EMULATION))
    );
    assert_eq!(v.state(), VCpuState::Invalid);
}

#[test]
fn nested_page_fault_is_retried_after_the_table_changes() {
    let (vm, mut v) = start(contract(GuestProgram::NestedPageFault));
    let fault = E::NestedPageFault {
        addr: GuestPhysAddr::from(RO_PAGE as usize + c::NPF_OFFSET),
        access_flags: AccessFlags::WRITE,
    };
    assert_eq!(run(&mut v), fault);
    // Still read-only: the same fault, without entering the guest.
    let runs = v.arch().run_count();
    assert_eq!(run(&mut v), fault);
    v.nested_page_table_changed().expect("changed");
    assert_eq!(run(&mut v), fault);
    assert_eq!(v.arch().run_count(), runs);
    assert_eq!(
        vm.read_u64(GuestPhysAddr::from(RO_PAGE as usize + c::NPF_OFFSET)),
        Ok(0)
    );
    vm.make_writable(GuestPhysAddr::from(RO_PAGE as usize))
        .expect("writable");
    v.nested_page_table_changed().expect("changed");
    done(&mut v);
    assert_eq!(
        vm.read_u64(GuestPhysAddr::from(RO_PAGE as usize + c::NPF_OFFSET)),
        Ok(c::NPF_DATA)
    );
}

/// Runs the `irq3` guest until it halts with nothing more to take; returns the vectors its
/// handlers reported, in order.
fn taken_vectors(v: &mut VCpu) -> Vec<u64> {
    let mut seen = Vec::new();
    for _ in 0..32 {
        match run(v) {
            E::Hypercall {
                nr: c::HC_REPORT,
                args,
            } => seen.push(args[0]),
            E::Hypercall {
                nr: c::HC_READY, ..
            } => {}
            E::Halt if !v.arch().has_pending_interrupt() => return seen,
            E::Halt => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    panic!("the guest never settled; took {seen:x?}")
}

#[test]
fn interrupts_are_taken_once_each_highest_first() {
    let (_vm, mut v) = start(guests::irq3());
    // Handed over before the first run, while the guest still has interrupts disabled.
    for vec in [IRQ_VECTOR, IRQ_VECTOR + 1, IRQ_VECTOR + 2] {
        v.inject_interrupt(vec as usize).expect("inject");
    }
    assert_eq!(
        taken_vectors(&mut v),
        [IRQ_VECTOR + 2, IRQ_VECTOR + 1, IRQ_VECTOR]
    );
    // Nothing more arrives.
    assert_eq!(run(&mut v), E::Halt);
    assert_eq!(v.state(), VCpuState::Blocked);
    // An interrupt wakes the halted vCPU, and is taken exactly once.
    v.handle()
        .inject_interrupt(IRQ_VECTOR as usize + 1)
        .expect("inject");
    assert_eq!(v.state(), VCpuState::Ready);
    assert_eq!(report(&mut v), IRQ_VECTOR + 1);
    assert_eq!(run(&mut v), E::Halt);
    assert_eq!(run(&mut v), E::Halt);
}

#[test]
fn a_vector_injected_again_while_pending_is_taken_once() {
    let (_vm, mut v) = start(guests::irq3());
    // Straight to the backend, so its own set merges (the core's would merge first).
    let arch = v.arch_mut().expect("usable");
    for vec in [
        IRQ_VECTOR,
        IRQ_VECTOR + 1,
        IRQ_VECTOR,
        IRQ_VECTOR + 1,
        IRQ_VECTOR,
    ] {
        arch.inject_interrupt(vec as usize).expect("inject");
    }
    assert_eq!(taken_vectors(&mut v), [IRQ_VECTOR + 1, IRQ_VECTOR]);
    // Taken, so the next injection is a new interrupt.
    v.arch_mut()
        .expect("usable")
        .inject_interrupt(IRQ_VECTOR as usize)
        .expect("inject");
    assert_eq!(taken_vectors(&mut v), [IRQ_VECTOR]);
}

#[test]
fn interrupts_wait_while_the_guest_masks_them() {
    let (_vm, mut v) = start(contract(GuestProgram::Halt));
    v.inject_interrupt(IRQ_VECTOR as usize).expect("inject");
    // rflags.IF = 0: the halt exits, the interrupt stays held (so the vCPU stays Ready).
    assert_eq!(run(&mut v), E::Halt);
    assert!(v.arch().has_pending_interrupt());
    assert_eq!(v.state(), VCpuState::Ready);
    done(&mut v);
    assert!(v.inject_interrupt(31).is_err());
    assert!(v.inject_interrupt(256).is_err());
}

#[test]
fn kick_stops_a_spinning_guest_and_it_resumes_where_it_was() {
    // Latency figures: `cargo bench -p axvcpu-kvm --bench exits`.
    let (_vm, mut v) = start(contract(GuestProgram::Spin));
    for _ in 0..20 {
        let handle = v.handle();
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let kicker = std::thread::spawn(move || {
            while handle.state() != VCpuState::Running && !s.load(Ordering::Acquire) {
                std::hint::spin_loop();
            }
            // Let the guest spin (interrupts off) for a while first.
            std::thread::sleep(Duration::from_millis(2));
            handle.kick();
        });
        let exit = run(&mut v);
        stop.store(true, Ordering::Release);
        kicker.join().expect("kicker");
        assert_eq!(exit, E::Kicked);
        // `spin` is one `jmp` to itself.
        assert_eq!(v.pc().expect("pc"), ENTRY as usize);
    }
    // A kick before run() is not lost and costs no ioctl.
    v.handle().kick();
    let before = v.arch().ioctl_count();
    assert_eq!(run(&mut v), E::Kicked);
    assert_eq!(v.arch().ioctl_count(), before);
}

#[test]
fn a_kick_answered_before_entry_leaves_no_echo_for_the_next_run() {
    let (_vm, mut v) = start(contract(GuestProgram::Halt));
    v.handle().kick();
    assert_eq!(run(&mut v), E::Kicked);
    // The kick also armed kvm_run.immediate_exit; had it stayed armed, this run would
    // bounce off it once (a second KVM_RUN) before reaching the guest's hlt.
    let before = v.arch().ioctl_count();
    assert_eq!(run(&mut v), E::Halt);
    assert_eq!(v.arch().ioctl_count() - before, 1);
}

/// `n` bytes of guest code at guest-physical `gpa`.
fn code(vm: &KvmTestVm, gpa: usize, n: usize) -> Vec<u8> {
    let word = vm.read_u64(GuestPhysAddr::from(gpa)).expect("guest RAM");
    word.to_le_bytes()[..n].to_vec()
}

#[test]
fn pc_points_at_reads_and_wrmsr_and_past_everything_else() {
    // After IoRead, MmioRead, SysRegRead and SysRegWrite, pc is at the instruction (KVM
    // finishes it at the next run()); after other exits, just past it, NestedPageFault
    // included (its store is held and done by the next run()).
    let (vm, mut v) = start(contract(GuestProgram::IoOut));
    assert!(matches!(run(&mut v), E::IoWrite { .. }));
    // `out 0xe0, al` ends at pc.
    assert_eq!(code(&vm, v.pc().expect("pc") - 2, 2), [0xe6, 0xe0]);

    drop(v);
    let (vm, mut v) = start(contract(GuestProgram::IoIn));
    assert!(matches!(run(&mut v), E::IoRead { .. }));
    // `in al, 0xe0` starts at pc.
    assert_eq!(code(&vm, v.pc().expect("pc"), 2), [0xe4, 0xe0]);
    v.complete_read(0).expect("complete");
    assert!(matches!(run(&mut v), E::Hypercall { .. }));
    // `out 0xf6, eax` ends at pc.
    assert_eq!(code(&vm, v.pc().expect("pc") - 2, 2), [0xe7, 0xf6]);

    drop(v);
    let (vm, mut v) = start(contract(GuestProgram::MmioWrite));
    assert!(matches!(run(&mut v), E::MmioWrite { .. }));
    // `mov byte ptr [rbx], 0xa5` ends at pc.
    assert_eq!(code(&vm, v.pc().expect("pc") - 3, 3), [0xc6, 0x03, 0xa5]);

    drop(v);
    let (vm, mut v) = start(contract(GuestProgram::MmioRead));
    assert!(matches!(run(&mut v), E::MmioRead { .. }));
    // `movzx ecx, byte ptr [rbx]` starts at pc.
    assert_eq!(code(&vm, v.pc().expect("pc"), 3), [0x0f, 0xb6, 0x0b]);

    drop(v);
    let (vm, mut v) = start(contract(GuestProgram::SysReg));
    assert!(matches!(run(&mut v), E::SysRegRead { .. }));
    assert_eq!(
        code(&vm, v.pc().expect("pc"), 2),
        [0x0f, 0x32],
        "rdmsr at pc"
    );
    v.complete_read(0).expect("complete");
    report(&mut v);
    assert!(matches!(run(&mut v), E::SysRegWrite { .. }));
    assert_eq!(
        code(&vm, v.pc().expect("pc"), 2),
        [0x0f, 0x30],
        "wrmsr at pc"
    );
    let at_wrmsr = v.pc().expect("pc");
    done(&mut v);
    assert!(v.pc().expect("pc") > at_wrmsr);

    drop(v);
    let (vm, mut v) = start(contract(GuestProgram::NestedPageFault));
    assert!(matches!(run(&mut v), E::NestedPageFault { .. }));
    // `mov qword ptr [rbx], rax` ends at pc.
    assert_eq!(code(&vm, v.pc().expect("pc") - 3, 3), [0x48, 0x89, 0x03]);
}

#[test]
fn pc_cannot_move_while_kvm_has_the_read_to_finish() {
    let refused = |v: &mut VCpu| {
        let at = v.pc().expect("pc");
        let e = v
            .arch_mut()
            .expect("usable")
            .set_pc(at + 2)
            .expect_err("refused");
        assert_eq!(e.kind(), AxErrorKind::BadState, "{e}");
        assert!(e.reason().starts_with("set_pc: KVM finishes"), "{e}");
        assert_eq!(v.pc().expect("pc"), at);
    };
    let (_vm, mut v) = start(contract(GuestProgram::IoIn));
    assert!(matches!(run(&mut v), E::IoRead { .. }));
    // The backend refuses before complete_read (the core does too)...
    refused(&mut v);
    assert!(v.set_pc(0).is_err());
    v.complete_read(c::IO_IN_VALUE).expect("complete");
    // ... and after it, until KVM has finished the `in`.
    refused(&mut v);
    assert_eq!(
        v.set_pc(0).map_err(|e| e.kind()),
        Err(AxErrorKind::BadState)
    );
    // A kick pending before entry keeps the backend out of KVM: still refused.
    v.arch().kicker().kick();
    assert_eq!(v.arch_mut().expect("usable").run(), Ok(E::Kicked));
    refused(&mut v);
    // The `in` was finished with the value; then pc moves freely again.
    let want = (c::IO_IN_VALUE & 0xff) | (c::IO_IN_RAX_BEFORE & !0xff);
    assert_eq!(report(&mut v), want);
    let here = v.pc().expect("pc");
    v.set_pc(here).expect("pc moves after a hypercall");

    drop(v);
    let (_vm, mut v) = start(contract(GuestProgram::MmioRead));
    assert!(matches!(run(&mut v), E::MmioRead { .. }));
    v.complete_read(0).expect("complete");
    refused(&mut v);
    drop(v);
    let (_vm, mut v) = start(contract(GuestProgram::SysReg));
    assert!(matches!(run(&mut v), E::SysRegRead { .. }));
    v.complete_read(0).expect("complete");
    refused(&mut v);
    report(&mut v);
    assert!(matches!(run(&mut v), E::SysRegWrite { .. }));
    refused(&mut v);
    done(&mut v);
}

#[test]
fn a_vm_whose_memory_was_unmapped_never_maps_it_again() {
    let (vm, mut v) = start(contract(GuestProgram::NestedPageFault));
    assert!(matches!(run(&mut v), E::NestedPageFault { .. }));
    let kvm_vm = vm.kvm_vm().clone();
    assert_eq!(kvm_vm.slot_count(), 2);
    kvm_vm.unmap_all().expect("unmap");
    assert_eq!(kvm_vm.slot_count(), 0);
    // The table changes and the vCPU is told: the VM must not read the table again (it may
    // be freed by now) nor map its memory.
    vm.make_writable(GuestPhysAddr::from(RO_PAGE as usize))
        .expect("writable");
    v.nested_page_table_changed().expect("changed");
    assert_eq!(kvm_vm.slot_count(), 0);
    // Nor may a new vCPU attach it again.
    assert!(vm.new_vcpu(1, vm.entry()).is_err());
    assert_eq!(kvm_vm.slot_count(), 0);
}

#[test]
fn misuse_is_refused() {
    let (vm, mut v) = start(contract(GuestProgram::Done));
    assert!(v.get_gpr(16).is_err());
    assert!(v.set_gpr(16, 0).is_err());
    assert!(v.complete_read(0).is_err());
    // run() from another thread than the bound one.
    let v =
        std::thread::scope(|s| s.spawn(|| v.run().is_err().then_some(v)).join()).expect("thread");
    let mut v = v.expect("run from another thread must fail");
    done(&mut v);

    // A KVM vCPU id can exist once per VM.
    assert!(VCpu::new(
        1,
        0,
        KvmCreateConfig {
            vm: vm.kvm_vm().clone()
        }
    )
    .is_err());

    // Every vCPU of a VM must use the same nested page table.
    let other = KvmTestVm::new(2, contract(GuestProgram::Done)).expect("vm");
    let mut w = VCpu::new(
        1,
        5,
        KvmCreateConfig {
            vm: vm.kvm_vm().clone(),
        },
    )
    .expect("new");
    w.set_entry(other.entry()).expect("entry");
    // SAFETY: `other` outlives `w` (declared before it), and `w` never runs.
    unsafe { w.set_ept_root(other.ept_root()) }.expect("root");
    assert!(w.setup(vm.setup_config(5)).is_err());

    // The backend itself refuses out-of-order calls too.
    let kvm_vm = KvmVm::new(kvm().expect("/dev/kvm"), KvmVmConfig::default()).expect("vm");
    let mut raw = KvmVCpu::<axvcpu_kvm::HostedHal>::new(0, 0, KvmCreateConfig { vm: kvm_vm })
        .expect("raw vCPU");
    assert!(raw.run().is_err());
    assert!(raw.bind().is_ok());
    assert!(raw.bind().is_err());
    assert!(raw.run().is_err());
    assert!(raw.complete_read(1).is_err());
    assert!(raw.unbind().is_ok());
    assert!(raw.unbind().is_err());
}

#[test]
fn per_cpu_enable_means_dev_kvm_is_usable_and_vms_need_it() {
    use axvcpu::AxPerCpu;
    let mut cpu = AxPerCpu::<KvmPerCpu>::new(0).expect("per-CPU state");
    assert!(!cpu.is_enabled());
    let e = KvmVm::new(cpu.arch(), KvmVmConfig::default()).expect_err("not enabled");
    assert_eq!(e.kind(), AxErrorKind::BadState);
    cpu.hardware_enable().expect("enable");
    assert!(cpu.is_enabled());
    assert!(cpu.arch().kvm().is_some());
    assert!(cpu.hardware_enable().is_err());
    let vm = KvmVm::new(cpu.arch(), KvmVmConfig::default()).expect("VM");
    cpu.hardware_disable().expect("disable");
    assert!(cpu.hardware_disable().is_err());
    // The VM keeps its own file descriptor.
    assert!(KvmVCpu::<axvcpu_kvm::HostedHal>::new(0, 0, KvmCreateConfig { vm }).is_ok());
    let raw = KvmPerCpu::new(1).expect("raw per-CPU state");
    assert!(KvmVm::new(&raw, KvmVmConfig::default()).is_err());
}

#[test]
fn an_injected_exception_faults_the_guest() {
    // The test guests have no IDT: an exception they take ends in a triple fault.
    // #GP(0) for an rdmsr (kvm_run.msr.error) instead of its value.
    let (_vm, mut v) = start(contract(GuestProgram::SysReg));
    assert!(matches!(run(&mut v), E::SysRegRead { .. }));
    v.inject_exception(13, Some(0)).expect("inject");
    refused_read(&mut v);
    assert_eq!(run(&mut v), E::SystemDown);
    drop(v);
    // ... and for a wrmsr.
    let (_vm, mut v) = start(contract(GuestProgram::SysReg));
    assert!(matches!(run(&mut v), E::SysRegRead { .. }));
    v.complete_read(c::SYSREG_READ_VALUE).expect("complete");
    assert_eq!(report(&mut v), c::SYSREG_READ_VALUE);
    assert!(matches!(run(&mut v), E::SysRegWrite { .. }));
    v.inject_exception(13, Some(0)).expect("inject");
    assert_eq!(run(&mut v), E::SystemDown);
    drop(v);
    // #UD through the vCPU events once nothing is left to finish (after a halt).
    let (_vm, mut v) = start(contract(GuestProgram::Halt));
    assert_eq!(run(&mut v), E::Halt);
    assert!(v.inject_exception(32, None).is_err(), "not an exception");
    v.inject_exception(6, None).expect("inject");
    assert!(v.inject_exception(6, None).is_err(), "one at a time");
    assert_eq!(run(&mut v), E::SystemDown);
    drop(v);
    // A port read KVM finishes itself cannot fault instead.
    let (_vm, mut v) = start(contract(GuestProgram::IoIn));
    assert!(matches!(run(&mut v), E::IoRead { .. }));
    let e = v.inject_exception(13, Some(0)).unwrap_err();
    assert_eq!(e.kind(), AxErrorKind::Unsupported);
}

fn refused_read(v: &mut VCpu) {
    assert!(v.complete_read(0).is_err(), "the read is no longer owed");
}
