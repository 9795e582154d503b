//! The lifecycle of `AxVCpu`, as a specification: what each state allows, what the backend
//! sees, and that every refused call leaves the vCPU as it was.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

// The test backend records nested page table roots and never walks them, so every
// `unsafe { set_ept_root(..) }` below is sound whatever the root.

use axvcpu::*;
use common::*;

fn assert_refused<T: std::fmt::Debug>(v: &AxVCpu<TestArch>, r: VCpuResult<T>, state: VCpuState) {
    let e = r.expect_err("the call should have been refused");
    assert!(!e.reason().is_empty());
    assert_eq!(v.state(), state, "a refused call changed the state ({e})");
}

/// `refused!(v, v.call(..), state)`: the call fails and `v` stays in `state`.
macro_rules! refused {
    ($v:ident, $call:expr, $state:expr) => {{
        let r = $call;
        assert_refused(&$v, r, $state)
    }};
}

#[test]
fn a_new_vcpu_is_created_and_knows_its_ids() {
    let v = AxVCpu::<TestArch>::new(3, 7, false).unwrap();
    assert_eq!(v.state(), VCpuState::Created);
    assert_eq!(
        v.id(),
        VCpuId {
            vm_id: 3,
            vcpu_id: 7
        }
    );
    assert_eq!(v.arch().calls, vec![Call::New(3, 7)]);
}

#[test]
fn ids_that_do_not_fit_the_tracking_table_are_refused() {
    let e = AxVCpu::<TestArch>::new(usize::MAX, 0, false).unwrap_err();
    assert_eq!(e.kind(), AxErrorKind::InvalidInput);
}

#[test]
fn the_backend_sees_the_seed_call_order() {
    let mut v = ready_vcpu(1, 0);
    v.arch_mut().unwrap().push_exit(AxVCpuExitReason::Idle);
    assert_eq!(v.run().unwrap(), AxVCpuExitReason::Idle);
    v.unbind().unwrap();
    assert_eq!(
        v.arch().calls,
        vec![
            Call::New(1, 0),
            Call::SetEntry(ENTRY),
            Call::SetEptRoot(ROOT),
            Call::Setup,
            Call::Bind,
            Call::Run,
            Call::Unbind
        ]
    );
    assert_eq!(v.state(), VCpuState::Free);
}

#[test]
fn configuration_needs_entry_and_root_exactly_once_before_setup() {
    let mut v = AxVCpu::<TestArch>::new(0, 0, false).unwrap();
    let c = VCpuState::Created;
    refused!(v, v.setup(()), c);
    v.set_entry(GuestPhysAddr::from(ENTRY)).unwrap();
    refused!(v, v.set_entry(GuestPhysAddr::from(ENTRY)), c);
    refused!(v, v.setup(()), c);
    set_test_root(&mut v).unwrap();
    refused!(v, set_test_root(&mut v), c);
    v.setup(()).unwrap();
    let f = VCpuState::Free;
    assert_eq!(v.state(), f);
    refused!(v, v.setup(()), f);
    refused!(v, v.set_entry(GuestPhysAddr::from(ENTRY)), f);
    refused!(v, set_test_root(&mut v), f);
    assert_eq!(v.arch().count(&Call::Setup), 1);
}

#[test]
fn nothing_runs_or_touches_registers_before_setup() {
    let mut v = AxVCpu::<TestArch>::new(0, 0, false).unwrap();
    let c = VCpuState::Created;
    refused!(v, v.bind(), c);
    refused!(v, v.run(), c);
    refused!(v, v.unbind(), c);
    refused!(v, v.set_gpr(0, 1), c);
    refused!(v, v.get_gpr(0), c);
    refused!(v, v.pc(), c);
    refused!(v, v.complete_read(0), c);
    refused!(v, v.inject_interrupt(32), c);
    assert_eq!(v.arch().calls, vec![Call::New(0, 0)]);
}

#[test]
fn run_needs_bind_and_bind_needs_a_free_vcpu() {
    let mut v = free_vcpu(0, 0);
    refused!(v, v.run(), VCpuState::Free);
    refused!(v, v.unbind(), VCpuState::Free);
    v.bind().unwrap();
    refused!(v, v.bind(), VCpuState::Ready);
    assert_eq!(v.arch().count(&Call::Bind), 1);
}

#[test]
fn one_cpu_holds_one_vcpu_and_tracks_it_as_current() {
    let mut a = free_vcpu(5, 0);
    let mut b = free_vcpu(5, 1);
    assert_eq!(current_vcpu::<TestHal>(), None);
    a.bind().unwrap();
    assert_eq!(current_vcpu::<TestHal>(), Some(a.id()));
    let e = b.bind().unwrap_err();
    assert_eq!(e.kind(), AxErrorKind::ResourceBusy);
    assert_eq!(b.state(), VCpuState::Free);
    assert_eq!(
        b.arch().count(&Call::Bind),
        0,
        "the backend must not see a refused bind"
    );
    a.unbind().unwrap();
    assert_eq!(current_vcpu::<TestHal>(), None);
    b.bind().unwrap();
    assert_eq!(current_vcpu::<TestHal>(), Some(b.id()));
    drop(b);
    assert_eq!(
        current_vcpu::<TestHal>(),
        None,
        "dropping a bound vCPU frees its CPU"
    );
}

#[test]
fn run_and_unbind_are_refused_on_another_cpu() {
    let v = ready_vcpu(0, 0);
    let home = TestHal::current_cpu_id();
    let v = std::thread::spawn(move || {
        let mut v = v;
        assert_ne!(TestHal::current_cpu_id(), home);
        refused!(v, v.run(), VCpuState::Ready);
        refused!(v, v.unbind(), VCpuState::Ready);
        v
    })
    .join()
    .unwrap();
    assert_eq!(v.arch().runs(), 0);
    assert_eq!(vcpu_on_cpu(home), Some(v.id()));
}

#[test]
fn halt_blocks_and_run_resumes_the_guest() {
    let mut v = ready_vcpu(0, 0);
    let a = v.arch_mut().unwrap();
    a.push_exit(AxVCpuExitReason::Halt);
    a.push_exit(hypercall(1));
    assert_eq!(v.run().unwrap(), AxVCpuExitReason::Halt);
    assert_eq!(v.state(), VCpuState::Blocked);
    assert_eq!(v.handle().state(), VCpuState::Blocked);
    assert_eq!(v.run().unwrap(), hypercall(1));
    assert_eq!(v.state(), VCpuState::Ready);
}

#[test]
fn a_blocked_vcpu_is_unbound_to_free() {
    let mut v = ready_vcpu(0, 0);
    v.arch_mut().unwrap().push_exit(AxVCpuExitReason::Halt);
    v.run().unwrap();
    v.unbind().unwrap();
    assert_eq!(v.state(), VCpuState::Free);
}

#[test]
fn an_injected_interrupt_wakes_a_blocked_vcpu_and_is_delivered_once() {
    let mut v = ready_vcpu(0, 0);
    let a = v.arch_mut().unwrap();
    a.push_exit(AxVCpuExitReason::Halt);
    a.push(Step::TakeInterrupt);
    a.push(Step::TakeInterrupt);
    v.run().unwrap();
    assert_eq!(v.state(), VCpuState::Blocked);
    v.handle().inject_interrupt(0x40).unwrap();
    assert_eq!(v.state(), VCpuState::Ready);
    assert_eq!(v.run().unwrap(), hypercall(0x40));
    assert_eq!(v.run().unwrap(), AxVCpuExitReason::Halt, "delivered twice");
    assert_eq!(v.arch().count(&Call::Inject(0x40)), 1);
}

#[test]
fn the_hal_hears_when_an_injection_wakes_a_blocked_vcpu_and_only_then() {
    // A VM id no other test uses, so the shared log tells this test's vCPU apart.
    let mut v = ready_vcpu(77, 0);
    let id = v.id();
    let woken = || {
        woken_log()
            .lock()
            .unwrap()
            .iter()
            .filter(|w| **w == id)
            .count()
    };
    v.inject_interrupt(0x30).unwrap();
    assert_eq!(woken(), 0, "a Ready vCPU is not woken");
    let a = v.arch_mut().unwrap();
    a.push(Step::TakeInterrupt);
    a.push_exit(AxVCpuExitReason::Halt);
    v.run().unwrap();
    v.run().unwrap();
    assert_eq!(v.state(), VCpuState::Blocked);
    v.handle().inject_interrupt(0x31).unwrap();
    assert_eq!(v.state(), VCpuState::Ready);
    assert_eq!(woken(), 1);
    v.inject_interrupt(0x32).unwrap();
    assert_eq!(woken(), 1, "already Ready: no second wake-up");
}

#[test]
fn interrupts_queued_while_not_running_reach_the_backend_in_order_on_the_next_run() {
    let mut v = free_vcpu(0, 0);
    v.inject_interrupt(33).unwrap();
    v.handle().inject_interrupt(34).unwrap();
    v.bind().unwrap();
    assert_eq!(
        v.arch().count(&Call::Inject(33)),
        0,
        "nothing is delivered before run"
    );
    v.arch_mut().unwrap().push(Step::TakeInterrupt);
    assert_eq!(v.run().unwrap(), hypercall(33));
    let injects: Vec<_> = v
        .arch()
        .calls
        .iter()
        .filter(|c| matches!(c, Call::Inject(_)))
        .cloned()
        .collect();
    assert_eq!(injects, vec![Call::Inject(33), Call::Inject(34)]);
    v.arch_mut().unwrap().push(Step::TakeInterrupt);
    v.arch_mut().unwrap().push(Step::TakeInterrupt);
    assert_eq!(v.run().unwrap(), hypercall(34));
    assert_eq!(v.run().unwrap(), AxVCpuExitReason::Halt);
    assert_eq!(
        v.arch().count(&Call::Inject(33)) + v.arch().count(&Call::Inject(34)),
        2
    );
}

#[test]
fn a_halt_with_an_interrupt_held_by_the_backend_stays_ready() {
    let mut v = ready_vcpu(0, 0);
    v.inject_interrupt(50).unwrap();
    v.arch_mut().unwrap().push_exit(AxVCpuExitReason::Halt);
    assert_eq!(v.run().unwrap(), AxVCpuExitReason::Halt);
    assert_eq!(v.state(), VCpuState::Ready);
}

#[test]
fn a_vector_the_architecture_cannot_inject_is_refused_before_queueing() {
    let mut v = ready_vcpu(0, 0);
    assert_eq!(
        v.inject_interrupt(256).unwrap_err().kind(),
        AxErrorKind::InvalidInput
    );
    assert!(v.handle().inject_interrupt(1000).is_err());
    assert_eq!(
        v.handle().inject_interrupt(MAX_VECTORS).unwrap_err().kind(),
        AxErrorKind::InvalidInput,
        "beyond what the pending set holds, whatever the architecture says"
    );
    v.arch_mut().unwrap().push_exit(AxVCpuExitReason::Idle);
    v.run().unwrap();
    assert!(!v.arch().calls.iter().any(|c| matches!(c, Call::Inject(_))));
}

#[test]
fn a_kick_before_run_returns_kicked_without_entering_the_guest() {
    let mut v = ready_vcpu(0, 0);
    let h = v.handle();
    h.kick();
    h.kick();
    assert_eq!(v.run().unwrap(), AxVCpuExitReason::Kicked);
    assert_eq!(v.state(), VCpuState::Ready);
    // Several kicks before one run count as one; the backend's own sticky flag is absorbed.
    v.arch_mut().unwrap().push_exit(hypercall(9));
    assert_eq!(v.run().unwrap(), hypercall(9));
}

#[test]
fn an_injection_kick_is_absorbed_and_the_guest_reentered() {
    let mut v = ready_vcpu(0, 0);
    // The backend reports Kicked although no one asked the vCPU to exit (an injection kick).
    v.arch()
        .kicked
        .0
        .store(true, std::sync::atomic::Ordering::Release);
    v.arch_mut().unwrap().push_exit(hypercall(2));
    assert_eq!(v.run().unwrap(), hypercall(2));
    assert_eq!(v.arch().runs(), 2);
}

#[test]
fn a_read_exit_must_be_completed_exactly_once_before_the_next_run() {
    let mut v = ready_vcpu(0, 0);
    refused!(v, v.complete_read(1), VCpuState::Ready);
    let read = AxVCpuExitReason::MmioRead {
        addr: GuestPhysAddr::from(0x1000usize),
        width: AccessWidth::Dword,
        reg: Some(5),
        reg_width: AccessWidth::Qword,
        signed_ext: false,
    };
    let a = v.arch_mut().unwrap();
    a.push_exit(read);
    a.push_exit(AxVCpuExitReason::IoRead {
        port: Port(0x60),
        width: AccessWidth::Byte,
    });
    a.push_exit(AxVCpuExitReason::SysRegRead {
        addr: SysRegAddr(0x10),
        reg: 0,
    });
    a.push_exit(AxVCpuExitReason::Idle);
    for value in [7, 8, 9] {
        v.run().unwrap();
        refused!(v, v.run(), VCpuState::Ready);
        v.complete_read(value).unwrap();
        refused!(v, v.complete_read(value), VCpuState::Ready);
    }
    v.run().unwrap();
    let completions: Vec<_> = v
        .arch()
        .calls
        .iter()
        .filter(|c| matches!(c, Call::CompleteRead(_)))
        .cloned()
        .collect();
    assert_eq!(
        completions,
        vec![
            Call::CompleteRead(7),
            Call::CompleteRead(8),
            Call::CompleteRead(9)
        ]
    );
}

#[test]
fn a_backend_error_in_run_makes_the_vcpu_invalid_and_frees_nothing_twice() {
    let mut v = ready_vcpu(0, 0);
    v.arch_mut().unwrap().push(Step::Fail);
    assert!(v.run().is_err());
    let i = VCpuState::Invalid;
    assert_eq!(v.state(), i);
    refused!(v, v.run(), i);
    refused!(v, v.unbind(), i);
    refused!(v, v.set_gpr(0, 0), i);
    assert!(v.arch_mut().is_err());
    let cpu = TestHal::current_cpu_id();
    assert_eq!(vcpu_on_cpu(cpu), Some(v.id()));
    drop(v);
    assert_eq!(vcpu_on_cpu(cpu), None);
}

#[test]
fn a_backend_error_in_setup_makes_the_vcpu_invalid() {
    let mut v = AxVCpu::<TestArch>::new(0, 0, true).unwrap();
    v.set_entry(GuestPhysAddr::from(ENTRY)).unwrap();
    set_test_root(&mut v).unwrap();
    assert!(v.setup(()).is_err());
    assert_eq!(v.state(), VCpuState::Invalid);
    refused!(v, v.bind(), VCpuState::Invalid);
}

#[test]
fn registers_pass_through_to_the_backend_and_bad_numbers_are_errors() {
    let mut v = free_vcpu(0, 0);
    v.set_gpr(3, 0xabc).unwrap();
    assert_eq!(v.get_gpr(3).unwrap(), 0xabc);
    assert_eq!(
        v.set_gpr(99, 1).unwrap_err().kind(),
        AxErrorKind::InvalidInput
    );
    assert_eq!(v.pc().unwrap(), ENTRY);
    v.set_pc(0x1234).unwrap();
    assert_eq!(v.pc().unwrap(), 0x1234);
}

#[test]
fn a_return_value_is_accepted_only_to_answer_a_hypercall() {
    let mut v = ready_vcpu(0, 0);
    refused!(v, v.set_return_value(1), VCpuState::Ready);
    v.arch_mut().unwrap().push_exit(hypercall(5));
    v.arch_mut().unwrap().push_exit(AxVCpuExitReason::Idle);
    assert_eq!(v.run().unwrap(), hypercall(5));
    v.set_return_value(76).unwrap();
    v.set_return_value(77).unwrap();
    assert_eq!(
        v.arch().count(&Call::SetReturn(77)),
        1,
        "the last value wins"
    );
    v.run().unwrap();
    refused!(v, v.set_return_value(78), VCpuState::Ready);
    assert_eq!(v.arch().count(&Call::SetReturn(78)), 0);
}

#[test]
fn the_pc_cannot_move_while_a_read_waits_for_its_value() {
    let mut v = ready_vcpu(0, 0);
    v.arch_mut().unwrap().push_exit(AxVCpuExitReason::IoRead {
        port: Port(0x60),
        width: AccessWidth::Byte,
    });
    v.run().unwrap();
    refused!(v, v.set_pc(0x1234), VCpuState::Ready);
    assert_eq!(v.pc().unwrap(), ENTRY);
    v.complete_read(1).unwrap();
    v.set_pc(0x1234).unwrap();
    assert_eq!(v.pc().unwrap(), 0x1234);
}

#[test]
fn an_exception_answers_a_read_instead_of_its_value() {
    let mut v = ready_vcpu(0, 0);
    refused!(v, v.complete_read(0), VCpuState::Ready);
    v.arch_mut()
        .unwrap()
        .push_exit(AxVCpuExitReason::SysRegRead {
            addr: SysRegAddr(0x8b),
            reg: 0,
        });
    v.arch_mut().unwrap().push_exit(AxVCpuExitReason::Idle);
    v.run().unwrap();
    v.inject_exception(13, Some(0)).unwrap();
    assert_eq!(v.arch().count(&Call::Exception(13, Some(0))), 1);
    refused!(v, v.complete_read(1), VCpuState::Ready);
    v.run().unwrap();
    assert_eq!(v.arch().count(&Call::CompleteRead(1)), 0);
}

#[test]
fn a_guest_that_powered_off_is_not_run_again() {
    let mut v = ready_vcpu(0, 0);
    v.arch_mut()
        .unwrap()
        .push_exit(AxVCpuExitReason::SystemDown);
    assert_eq!(v.run().unwrap(), AxVCpuExitReason::SystemDown);
    refused!(v, v.run(), VCpuState::Ready);
    assert_eq!(v.arch().runs(), 1);
    // Still usable otherwise: registers read, and it unbinds cleanly.
    v.get_gpr(0).unwrap();
    v.unbind().unwrap();
}

#[test]
fn the_boot_argument_is_set_only_before_the_cpu_starts() {
    let mut v = ready_vcpu(0, 0);
    v.set_boot_arg(0xa1).unwrap();
    assert_eq!(v.get_gpr(1).unwrap(), 0xa1);
    v.arch_mut().unwrap().push_exit(AxVCpuExitReason::Idle);
    v.run().unwrap();
    refused!(v, v.set_boot_arg(0xa2), VCpuState::Ready);
    assert_eq!(v.get_gpr(1).unwrap(), 0xa1);
    // A CPU that stopped itself can be started again with a new argument.
    v.arch_mut()
        .unwrap()
        .push_exit(AxVCpuExitReason::CpuDown { state: 0 });
    v.run().unwrap();
    v.set_boot_arg(0xa3).unwrap();
    assert_eq!(v.get_gpr(1).unwrap(), 0xa3);
}

#[test]
fn exits_the_backend_handled_itself_never_reach_the_hypervisor() {
    let mut v = ready_vcpu(0, 0);
    let a = v.arch_mut().unwrap();
    a.push_exit(AxVCpuExitReason::Nothing);
    a.push_exit(AxVCpuExitReason::Nothing);
    a.push_exit(AxVCpuExitReason::Idle);
    assert_eq!(v.run().unwrap(), AxVCpuExitReason::Idle);
    assert_eq!(
        v.arch().runs(),
        3,
        "the core entered the guest again after each Nothing"
    );
}

#[test]
fn a_vector_injected_twice_before_the_guest_takes_it_is_taken_once() {
    let mut v = ready_vcpu(0, 0);
    let h = v.handle();
    h.inject_interrupt(0x40).unwrap();
    h.inject_interrupt(0x40).unwrap();
    h.inject_interrupt(0x41).unwrap();
    // Into the backend while it still holds 0x40: merged there too.
    v.arch_mut().unwrap().push_exit(AxVCpuExitReason::Idle);
    v.run().unwrap();
    h.inject_interrupt(0x40).unwrap();
    let a = v.arch_mut().unwrap();
    for _ in 0..3 {
        a.push(Step::TakeInterrupt);
    }
    assert_eq!(v.run().unwrap(), hypercall(0x40));
    assert_eq!(
        v.run().unwrap(),
        hypercall(0x41),
        "a distinct vector is not merged"
    );
    assert_eq!(v.run().unwrap(), AxVCpuExitReason::Halt, "0x40 taken twice");
    // Once taken, the same vector is pending again.
    h.inject_interrupt(0x40).unwrap();
    v.arch_mut().unwrap().push(Step::TakeInterrupt);
    assert_eq!(v.run().unwrap(), hypercall(0x40));
}

#[test]
fn an_interrupt_injected_into_a_running_vcpu_kicks_it_and_is_delivered_in_the_same_run() {
    let mut v = ready_vcpu(0, 0);
    let h = v.handle();
    let a = v.arch_mut().unwrap();
    // The injector's kick may land before the backend's entry check or during the wait.
    a.push(Step::WaitForInterrupt);
    a.push(Step::TakeInterrupt);
    let exit = std::thread::scope(|s| {
        s.spawn(|| {
            while h.state() != VCpuState::Running {
                std::thread::yield_now();
            }
            h.inject_interrupt(40).unwrap();
        });
        v.run().unwrap()
    });
    assert_eq!(
        exit,
        hypercall(40),
        "the kick was not absorbed or the vector not handed over"
    );
    assert_eq!(v.arch().count(&Call::Inject(40)), 1);
}

#[test]
fn a_kick_from_another_thread_makes_run_return_kicked() {
    let mut v = ready_vcpu(0, 0);
    let h = v.handle();
    v.arch_mut().unwrap().push(Step::WaitForKick);
    let exit = std::thread::scope(|s| {
        s.spawn(|| {
            while h.state() != VCpuState::Running {
                std::thread::yield_now();
            }
            h.kick();
        });
        v.run().unwrap()
    });
    assert_eq!(exit, AxVCpuExitReason::Kicked);
}

#[test]
fn per_cpu_state_refuses_double_enable_and_disables_on_drop() {
    let mut p = AxPerCpu::<LoggedPerCpu>::new(1001).unwrap();
    assert!(!p.is_enabled());
    assert!(p.hardware_disable().is_err());
    p.hardware_enable().unwrap();
    assert!(p.is_enabled());
    assert_eq!(
        p.hardware_enable().unwrap_err().kind(),
        AxErrorKind::BadState
    );
    drop(p);
    let log: Vec<_> = percpu_log()
        .lock()
        .unwrap()
        .iter()
        .filter(|(c, _)| *c == 1001)
        .map(|(_, w)| *w)
        .collect();
    assert_eq!(log, vec!["enable", "disable"]);
}

#[test]
fn errors_say_why_and_convert_to_axerror() {
    let mut v = free_vcpu(0, 0);
    let e = v.run().unwrap_err();
    assert!(e.to_string().contains("bind"), "{e}");
    let ax: AxError = e.into();
    assert_eq!(ax, AxError::BadState);
}

#[test]
fn every_register_and_interrupt_call_before_setup_is_refused() {
    let mut v = AxVCpu::<TestArch>::new(0, 0, false).unwrap();
    let c = VCpuState::Created;
    refused!(v, v.set_pc(0x1000), c);
    refused!(v, v.set_return_value(1), c);
    refused!(v, v.set_boot_arg(1), c);
    refused!(v, v.nested_page_table_changed(), c);
    refused!(v, v.inject_interrupt(32), c);
    assert_eq!(v.arch().calls, vec![Call::New(0, 0)]);
    // Still configurable afterwards.
    v.set_entry(GuestPhysAddr::from(ENTRY)).unwrap();
    set_test_root(&mut v).unwrap();
    v.setup(()).unwrap();
    assert_eq!(v.state(), VCpuState::Free);
}

#[test]
fn an_invalid_vcpu_refuses_every_call_and_the_backend_sees_none_of_them() {
    let mut v = ready_vcpu(0, 0);
    v.arch_mut().unwrap().push(Step::Fail);
    assert!(v.run().is_err());
    let i = VCpuState::Invalid;
    let calls_before = v.arch().calls.len();
    refused!(v, v.set_entry(GuestPhysAddr::from(ENTRY)), i);
    refused!(v, set_test_root(&mut v), i);
    refused!(v, v.setup(()), i);
    refused!(v, v.bind(), i);
    refused!(v, v.complete_read(0), i);
    refused!(v, v.get_gpr(0), i);
    refused!(v, v.pc(), i);
    refused!(v, v.set_pc(0), i);
    refused!(v, v.set_return_value(0), i);
    refused!(v, v.set_boot_arg(0), i);
    refused!(v, v.inject_interrupt(32), i);
    refused!(v, v.nested_page_table_changed(), i);
    assert_eq!(v.arch().calls.len(), calls_before);
}

#[test]
fn a_failed_bind_leaves_the_vcpu_free_and_its_cpu_unclaimed() {
    let mut v = free_vcpu(0, 0);
    v.arch_mut().unwrap().fail_bind = true;
    refused!(v, v.bind(), VCpuState::Free);
    assert_eq!(v.bound_cpu(), None);
    assert_eq!(
        current_vcpu::<TestHal>(),
        None,
        "a failed bind kept the CPU"
    );
    // Usable: the next bind succeeds.
    v.bind().unwrap();
    assert_eq!(v.state(), VCpuState::Ready);
    assert_eq!(current_vcpu::<TestHal>(), Some(v.id()));
}

#[test]
fn a_failed_unbind_makes_the_vcpu_invalid_and_frees_its_cpu() {
    let mut v = ready_vcpu(0, 0);
    v.arch_mut().unwrap().fail_unbind = true;
    assert!(v.unbind().is_err());
    assert_eq!(v.state(), VCpuState::Invalid);
    assert_eq!(v.bound_cpu(), None);
    assert_eq!(current_vcpu::<TestHal>(), None);
    let unbound = v.arch().unbound_on.clone();
    drop(v);
    assert_eq!(
        unbound.lock().unwrap().len(),
        1,
        "dropping an unbound vCPU unbinds it again"
    );
}

#[test]
fn a_cpu_id_beyond_the_tracking_table_is_refused_by_bind() {
    let mut v = free_vcpu(0, 0);
    set_test_cpu(MAX_CPUS);
    let e = v.bind().unwrap_err();
    assert_eq!(e.kind(), AxErrorKind::InvalidInput);
    assert_eq!(e.value(), Some(MAX_CPUS as u64));
    assert_eq!(v.state(), VCpuState::Free);
    assert_eq!(v.arch().count(&Call::Bind), 0);
    assert_eq!(vcpu_on_cpu(MAX_CPUS), None);
}

#[test]
fn dropping_a_bound_vcpu_on_another_cpu_frees_its_cpu_without_unbinding_there() {
    let v = ready_vcpu(0, 0);
    let home = TestHal::current_cpu_id();
    let unbound = v.arch().unbound_on.clone();
    // The backend's `unbind` acts on the CPU it runs on: from the wrong CPU it would reset
    // that CPU's virtualization state, not the vCPU's.
    let elsewhere = std::thread::spawn(move || {
        let cpu = TestHal::current_cpu_id();
        drop(v);
        cpu
    })
    .join()
    .unwrap();
    assert_ne!(elsewhere, home);
    assert_eq!(vcpu_on_cpu(home), None, "the home CPU stays claimed");
    assert!(
        !unbound.lock().unwrap().contains(&elsewhere),
        "the backend was unbound on CPU {elsewhere}, not its own"
    );
}

#[test]
fn dropping_a_bound_vcpu_on_its_cpu_unbinds_it_there() {
    let v = ready_vcpu(0, 0);
    let home = TestHal::current_cpu_id();
    let unbound = v.arch().unbound_on.clone();
    drop(v);
    assert_eq!(*unbound.lock().unwrap(), vec![home]);
    assert_eq!(vcpu_on_cpu(home), None);
}

#[test]
fn a_kick_before_bind_is_kept_for_the_first_run() {
    let mut v = free_vcpu(0, 0);
    v.handle().kick();
    v.bind().unwrap();
    assert_eq!(v.run().unwrap(), AxVCpuExitReason::Kicked);
    assert_eq!(v.arch().runs(), 0, "the guest was entered despite the kick");
}

#[test]
fn a_read_left_pending_survives_unbind_and_still_blocks_run() {
    let mut v = ready_vcpu(0, 0);
    v.arch_mut().unwrap().push_exit(AxVCpuExitReason::IoRead {
        port: Port(0x60),
        width: AccessWidth::Byte,
    });
    v.run().unwrap();
    v.unbind().unwrap();
    v.bind().unwrap();
    refused!(v, v.run(), VCpuState::Ready);
    assert_eq!(v.arch().runs(), 1);
    v.complete_read(5).unwrap();
    v.arch_mut().unwrap().push_exit(AxVCpuExitReason::Idle);
    assert_eq!(v.run().unwrap(), AxVCpuExitReason::Idle);
}

#[test]
fn a_handle_outlives_its_vcpu_harmlessly() {
    let v = ready_vcpu(0, 0);
    let h = v.handle();
    drop(v);
    h.kick();
    h.inject_interrupt(3).unwrap();
    assert_eq!(h.state(), VCpuState::Ready);
}

/// Iterations of the racing tests below (each is one race between two threads).
const RACES: usize = if cfg!(miri) { 12 } else { 2000 };

#[test]
fn a_halt_racing_an_injection_never_ends_blocked_with_the_interrupt_pending() {
    // However the injection and the halt interleave, once both are done the vCPU is Ready:
    // the vector is either held by the backend, queued in the core, or the injector saw
    // `Blocked` and woke it. Ending `Blocked` would be a lost wake-up.
    for i in 0..RACES {
        let mut v = ready_vcpu(0, 0);
        v.arch_mut().unwrap().push_exit(AxVCpuExitReason::Halt);
        let h = v.handle();
        std::thread::scope(|s| {
            s.spawn(|| h.inject_interrupt(0x20).unwrap());
            assert_eq!(v.run().unwrap(), AxVCpuExitReason::Halt);
        });
        assert_eq!(
            v.state(),
            VCpuState::Ready,
            "race {i}: Blocked although an interrupt was injected"
        );
    }
}

#[test]
fn an_injection_racing_guest_entry_is_delivered_in_that_run() {
    // The injector either finds the vCPU not yet `Running` (then `run()` must see the queued
    // vector before entering) or `Running` (then it must kick). A guest waiting for the
    // interrupt gets it in this run either way; a miss leaves it waiting (10 s, then `Err`).
    for i in 0..RACES {
        let mut v = ready_vcpu(0, 0);
        let a = v.arch_mut().unwrap();
        a.push(Step::WaitForInterrupt);
        a.push(Step::TakeInterrupt);
        let h = v.handle();
        let exit = std::thread::scope(|s| {
            s.spawn(|| h.inject_interrupt(0x21).unwrap());
            v.run()
        });
        assert_eq!(exit.unwrap(), hypercall(0x21), "race {i}");
        assert_eq!(v.arch().count(&Call::Inject(0x21)), 1, "race {i}");
    }
}

#[test]
#[allow(deprecated)]
fn code_written_to_the_seed_names_still_works() {
    fn seed_style(v: &mut AxVCpu<TestArch>) -> AxResult {
        v.bind_to_cpu()?;
        v.arch_mut()?.push_exit(AxVCpuExitReason::Idle);
        v.run()?;
        v.unbind_from_cpu()?;
        Ok(())
    }
    let mut v = free_vcpu(0, 0);
    seed_style(&mut v).unwrap();
    assert_eq!(v.state(), VCpuState::Free);
    // A refusal still arrives, as the seed's bare error code.
    v.bind().unwrap();
    assert_eq!(seed_style(&mut v), Err(AxError::BadState));
}
