//! Random call sequences against a model of the lifecycle: the vCPU never panics, every
//! misuse is an `Err` that leaves the state unchanged, and the state always matches the model.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use axvcpu::*;
use common::*;
use proptest::prelude::*;

#[derive(Debug, Clone, Copy)]
enum Exit {
    /// The backend handles one exit itself, then exits with `Idle`.
    Nothing,
    Halt,
    MmioRead,
    Hypercall,
    SystemDown,
    Fail,
}

#[derive(Debug, Clone, Copy)]
enum Op {
    SetEntry,
    SetEptRoot,
    Setup,
    Bind,
    Unbind,
    Run(Exit),
    CompleteRead,
    Inject(usize),
    Kick,
    SetGpr(usize),
    SetPc,
    SetReturnValue,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        Just(Op::SetEntry),
        Just(Op::SetEptRoot),
        Just(Op::Setup),
        Just(Op::Bind),
        Just(Op::Unbind),
        prop_oneof![
            Just(Exit::Nothing),
            Just(Exit::Halt),
            Just(Exit::MmioRead),
            Just(Exit::Hypercall),
            Just(Exit::SystemDown),
            Just(Exit::Fail)
        ]
        .prop_map(Op::Run),
        Just(Op::CompleteRead),
        prop_oneof![0usize..256, 256usize..300].prop_map(Op::Inject),
        Just(Op::Kick),
        (0usize..20).prop_map(Op::SetGpr),
        Just(Op::SetPc),
        Just(Op::SetReturnValue),
    ]
}

/// What the lifecycle promises, written out plainly.
#[derive(Debug, Default)]
struct Model {
    entry: bool,
    root: bool,
    state: Option<VCpuState>,
    read_pending: bool,
    hypercall_answerable: bool,
    powered_off: bool,
    kick_requested: bool,
    /// Injected, not yet taken by the guest (queued in the core or held by the backend).
    interrupts: usize,
}

impl Model {
    fn state(&self) -> VCpuState {
        self.state.unwrap_or(VCpuState::Created)
    }

    fn set_up(&self) -> bool {
        !matches!(self.state(), VCpuState::Created | VCpuState::Invalid)
    }

    fn bound(&self) -> bool {
        matches!(self.state(), VCpuState::Ready | VCpuState::Blocked)
    }

    /// Applies `op`; returns whether it should succeed.
    fn apply(&mut self, op: Op) -> bool {
        use VCpuState::*;
        let s = self.state();
        match op {
            Op::SetEntry if s == Created && !self.entry => self.entry = true,
            Op::SetEptRoot if s == Created && !self.root => self.root = true,
            Op::Setup if s == Created && self.entry && self.root => self.state = Some(Free),
            Op::Bind if s == Free => self.state = Some(Ready),
            Op::Unbind if self.bound() => self.state = Some(Free),
            Op::Run(exit) if self.bound() && !self.read_pending && !self.powered_off => {
                self.hypercall_answerable = false;
                if self.kick_requested {
                    self.kick_requested = false;
                    self.state = Some(Ready);
                    return true;
                }
                match exit {
                    Exit::Fail => {
                        self.state = Some(Invalid);
                        return false;
                    }
                    Exit::Halt if self.interrupts == 0 => self.state = Some(Blocked),
                    Exit::MmioRead => {
                        self.read_pending = true;
                        self.state = Some(Ready)
                    }
                    Exit::Hypercall => {
                        self.hypercall_answerable = true;
                        self.state = Some(Ready)
                    }
                    Exit::SystemDown => {
                        self.powered_off = true;
                        self.state = Some(Ready)
                    }
                    _ => self.state = Some(Ready),
                }
            }
            Op::CompleteRead if self.set_up() && self.read_pending => self.read_pending = false,
            Op::Inject(v) if self.set_up() && v < 256 => {
                self.interrupts += 1;
                if s == Blocked {
                    self.state = Some(Ready);
                }
            }
            Op::Kick => self.kick_requested = true,
            Op::SetGpr(r) if self.set_up() && r < 16 => {}
            Op::SetPc if self.set_up() && !self.read_pending => {}
            Op::SetReturnValue if self.set_up() && self.hypercall_answerable => {}
            _ => return false,
        }
        true
    }
}

fn apply(v: &mut AxVCpu<TestArch>, op: Op) -> VCpuResult {
    match op {
        Op::SetEntry => v.set_entry(GuestPhysAddr::from(ENTRY)),
        // SAFETY: the test backend records the root and never walks it.
        Op::SetEptRoot => unsafe { v.set_ept_root(HostPhysAddr::from(ROOT)) },
        Op::Setup => v.setup(()),
        Op::Bind => v.bind(),
        Op::Unbind => v.unbind(),
        Op::Run(exit) => {
            if let Ok(a) = v.arch_mut() {
                a.script.clear();
                if let Exit::Nothing = exit {
                    a.push(Step::Exit(AxVCpuExitReason::Nothing));
                }
                a.push(match exit {
                    Exit::Nothing => Step::Exit(AxVCpuExitReason::Idle),
                    Exit::Hypercall => Step::Exit(AxVCpuExitReason::Hypercall {
                        nr: 1,
                        args: [0; 6],
                    }),
                    Exit::SystemDown => Step::Exit(AxVCpuExitReason::SystemDown),
                    Exit::Halt => Step::Exit(AxVCpuExitReason::Halt),
                    Exit::MmioRead => Step::Exit(AxVCpuExitReason::MmioRead {
                        addr: GuestPhysAddr::from(0x9000usize),
                        width: AccessWidth::Byte,
                        reg: Some(1),
                        reg_width: AccessWidth::Qword,
                        signed_ext: false,
                    }),
                    Exit::Fail => Step::Fail,
                });
            }
            v.run().map(drop)
        }
        Op::CompleteRead => v.complete_read(0),
        Op::Inject(vector) => v.inject_interrupt(vector),
        Op::Kick => {
            v.handle().kick();
            Ok(())
        }
        Op::SetGpr(reg) => v.set_gpr(reg, reg),
        Op::SetPc => v.set_pc(0x5000),
        Op::SetReturnValue => v.set_return_value(3),
    }
}

proptest! {
    // Under Miri: few cases, and no failure file (Miri isolates the file system).
    #![proptest_config(ProptestConfig {
        cases: if cfg!(miri) { 4 } else { 512 },
        failure_persistence: if cfg!(miri) { None } else { ProptestConfig::default().failure_persistence },
        ..ProptestConfig::default()
    })]

    #[test]
    fn random_call_sequences_follow_the_model(ops in prop::collection::vec(op(), 1..40)) {
        let mut v = AxVCpu::<TestArch>::new(9, 0, false).unwrap();
        let mut model = Model::default();
        let cpu = TestHal::current_cpu_id();
        for op in ops {
            let before = v.state();
            let expect_ok = model.apply(op);
            let result = apply(&mut v, op);
            prop_assert_eq!(result.is_ok(), expect_ok, "{:?} from {:?}: {:?}", op, before, result);
            if let Err(e) = result {
                prop_assert!(!e.reason().is_empty());
                if !matches!(op, Op::Run(Exit::Fail)) {
                    prop_assert_eq!(v.state(), before, "refused {:?} changed the state", op);
                }
            }
            prop_assert_eq!(v.state(), model.state(), "after {:?}", op);
            // The CPU slot is held exactly while bound (an Invalid vCPU keeps it until dropped).
            let holds = vcpu_on_cpu(cpu) == Some(v.id());
            if model.bound() {
                prop_assert!(holds, "bound but not current after {:?}", op);
            } else if model.state() != VCpuState::Invalid {
                prop_assert!(!holds, "current but not bound after {:?}", op);
            }
        }
        drop(v);
        prop_assert_eq!(vcpu_on_cpu(cpu), None);
    }
}
