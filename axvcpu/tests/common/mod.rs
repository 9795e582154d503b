//! A test architecture that records every call the core makes and replays scripted exits,
//! and a test HAL whose "physical CPU" is the calling thread.
#![allow(dead_code)]

use std::cell::Cell;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axvcpu::*;

static NEXT_CPU: AtomicUsize = AtomicUsize::new(1);
thread_local! {
    static CPU: Cell<usize> = Cell::new(NEXT_CPU.fetch_add(1, Ordering::Relaxed) % MAX_CPUS);
}

/// Each test thread is its own physical CPU.
pub struct TestHal;

/// Makes the calling thread report `cpu` as its physical CPU from now on.
pub fn set_test_cpu(cpu: usize) {
    CPU.with(|c| c.set(cpu));
}

impl AxVCpuHal for TestHal {
    fn alloc_frame() -> Option<HostPhysAddr> {
        None
    }
    fn dealloc_frame(_: HostPhysAddr) {}
    fn phys_to_virt(p: HostPhysAddr) -> HostVirtAddr {
        HostVirtAddr::from(p.as_usize())
    }
    fn virt_to_phys(v: HostVirtAddr) -> HostPhysAddr {
        HostPhysAddr::from(v.as_usize())
    }
    fn current_cpu_id() -> usize {
        CPU.with(|c| c.get())
    }
    fn vcpu_woken(id: VCpuId) {
        if let Ok(mut log) = woken_log().lock() {
            log.push(id);
        }
    }
}

/// Every vCPU [`TestHal::vcpu_woken`] was told about, in order (all tests of a binary).
pub fn woken_log() -> &'static Mutex<Vec<VCpuId>> {
    static LOG: Mutex<Vec<VCpuId>> = Mutex::new(Vec::new());
    &LOG
}

/// A call the core made into the backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    New(usize, usize),
    SetEntry(usize),
    SetEptRoot(usize),
    Setup,
    Bind,
    Unbind,
    Run,
    SetGpr(usize, usize),
    CompleteRead(u64),
    Inject(usize),
    SetReturn(usize),
    Exception(u8, Option<u32>),
}

#[derive(Clone, Default)]
pub struct Kick(pub Arc<AtomicBool>);

impl VCpuKick for Kick {
    fn kick(&self) {
        self.0.store(true, Ordering::Release);
    }
}

/// What the next `run()` of the test backend does.
#[derive(Debug, Clone)]
pub enum Step {
    Exit(AxVCpuExitReason),
    Fail,
    /// The guest takes one held interrupt and reports it as `Hypercall { nr: vector }`.
    TakeInterrupt,
    /// The guest spins until kicked (at most 10 s), then the backend returns `Kicked`.
    WaitForKick,
    /// The guest waits for an interrupt: one already held is taken at once and reported as
    /// `Hypercall { nr: vector }`; otherwise it spins until kicked (at most 10 s) and the
    /// backend returns `Kicked` (an injection kick: the core hands the vector over and
    /// re-enters, so push a `TakeInterrupt` after this step).
    WaitForInterrupt,
}

pub struct TestArch {
    pub calls: Vec<Call>,
    pub script: VecDeque<Step>,
    /// Injected and not yet taken: a pending bit per vector, as the trait's rule says.
    pub held_interrupts: VectorSet,
    pub gprs: [usize; 16],
    pub pc: usize,
    pub kicked: Kick,
    pub fail_setup: bool,
    /// The CPU of every backend `unbind`, kept past the vCPU's drop.
    pub unbound_on: Arc<Mutex<Vec<usize>>>,
    /// Makes the next `bind` / `unbind` fail.
    pub fail_bind: bool,
    pub fail_unbind: bool,
}

impl TestArch {
    pub fn push(&mut self, step: Step) {
        self.script.push_back(step);
    }
    pub fn push_exit(&mut self, exit: AxVCpuExitReason) {
        self.push(Step::Exit(exit));
    }
    pub fn count(&self, call: &Call) -> usize {
        self.calls.iter().filter(|c| *c == call).count()
    }
    pub fn runs(&self) -> usize {
        self.count(&Call::Run)
    }
    /// The guest takes the lowest held interrupt.
    fn take_interrupt(&mut self) -> Option<usize> {
        let v = self.held_interrupts.lowest()?;
        self.held_interrupts.remove(v);
        Some(v)
    }
}

impl AxArchVCpu for TestArch {
    type CreateConfig = bool; // fail_setup
    type SetupConfig = ();
    type Hal = TestHal;
    type Kicker = Kick;

    fn new(vm_id: usize, vcpu_id: usize, fail_setup: bool) -> VCpuResult<Self> {
        Ok(Self {
            calls: vec![Call::New(vm_id, vcpu_id)],
            script: VecDeque::new(),
            held_interrupts: VectorSet::new(),
            gprs: [0; 16],
            pc: 0,
            kicked: Kick::default(),
            fail_setup,
            unbound_on: Arc::default(),
            fail_bind: false,
            fail_unbind: false,
        })
    }
    fn set_entry(&mut self, entry: GuestPhysAddr) -> VCpuResult {
        self.calls.push(Call::SetEntry(entry.as_usize()));
        self.pc = entry.as_usize();
        Ok(())
    }
    unsafe fn set_ept_root(&mut self, root: HostPhysAddr) -> VCpuResult {
        self.calls.push(Call::SetEptRoot(root.as_usize()));
        Ok(())
    }
    fn setup(&mut self, _: ()) -> VCpuResult {
        self.calls.push(Call::Setup);
        if self.fail_setup {
            return Err(VCpuError::unsupported("test backend told to fail setup"));
        }
        Ok(())
    }
    fn run(&mut self) -> VCpuResult<AxVCpuExitReason> {
        self.calls.push(Call::Run);
        if self.kicked.0.swap(false, Ordering::AcqRel) {
            return Ok(AxVCpuExitReason::Kicked);
        }
        match self.script.pop_front() {
            Some(Step::Exit(e)) => Ok(e),
            Some(Step::Fail) | None => {
                Err(VCpuError::bad_state("test guest script ended or failed"))
            }
            Some(Step::WaitForKick) => {
                let start = std::time::Instant::now();
                while !self.kicked.0.swap(false, Ordering::AcqRel) {
                    if start.elapsed().as_secs() > 10 {
                        return Err(VCpuError::bad_state("test guest never kicked"));
                    }
                    std::thread::yield_now();
                }
                Ok(AxVCpuExitReason::Kicked)
            }
            Some(Step::WaitForInterrupt) => {
                if let Some(v) = self.take_interrupt() {
                    // Taken now: drop the `TakeInterrupt` that follows this step.
                    self.script.pop_front();
                    return Ok(AxVCpuExitReason::Hypercall {
                        nr: v as u64,
                        args: [0; 6],
                    });
                }
                let start = std::time::Instant::now();
                while !self.kicked.0.swap(false, Ordering::AcqRel) {
                    if start.elapsed().as_secs() > 10 {
                        return Err(VCpuError::bad_state(
                            "test guest waited 10 s for an interrupt: never kicked",
                        ));
                    }
                    std::thread::yield_now();
                }
                Ok(AxVCpuExitReason::Kicked)
            }
            Some(Step::TakeInterrupt) => match self.take_interrupt() {
                Some(v) => Ok(AxVCpuExitReason::Hypercall {
                    nr: v as u64,
                    args: [0; 6],
                }),
                None => Ok(AxVCpuExitReason::Halt),
            },
        }
    }
    fn bind(&mut self) -> VCpuResult {
        self.calls.push(Call::Bind);
        if std::mem::take(&mut self.fail_bind) {
            return Err(VCpuError::unsupported("test backend told to fail bind"));
        }
        Ok(())
    }
    fn unbind(&mut self) -> VCpuResult {
        self.calls.push(Call::Unbind);
        if let Ok(mut log) = self.unbound_on.lock() {
            log.push(TestHal::current_cpu_id());
        }
        if std::mem::take(&mut self.fail_unbind) {
            return Err(VCpuError::unsupported("test backend told to fail unbind"));
        }
        Ok(())
    }
    fn set_gpr(&mut self, reg: usize, val: usize) -> VCpuResult {
        self.calls.push(Call::SetGpr(reg, val));
        *self
            .gprs
            .get_mut(reg)
            .ok_or(VCpuError::invalid_input("no such register"))? = val;
        Ok(())
    }
    fn get_gpr(&self, reg: usize) -> VCpuResult<usize> {
        self.gprs
            .get(reg)
            .copied()
            .ok_or(VCpuError::invalid_input("no such register"))
    }
    fn pc(&self) -> usize {
        self.pc
    }
    fn set_pc(&mut self, pc: usize) -> VCpuResult {
        self.pc = pc;
        Ok(())
    }
    fn set_return_value(&mut self, val: usize) {
        self.calls.push(Call::SetReturn(val));
    }
    fn set_boot_arg(&mut self, arg: usize) -> VCpuResult {
        self.gprs[1] = arg;
        Ok(())
    }
    fn complete_read(&mut self, value: u64) -> VCpuResult {
        self.calls.push(Call::CompleteRead(value));
        Ok(())
    }
    fn inject_interrupt(&mut self, vector: usize) -> VCpuResult {
        self.calls.push(Call::Inject(vector));
        self.held_interrupts.insert(vector);
        Ok(())
    }
    fn inject_exception(&mut self, vector: u8, error_code: Option<u32>) -> VCpuResult {
        self.calls.push(Call::Exception(vector, error_code));
        Ok(())
    }
    fn has_pending_interrupt(&self) -> bool {
        !self.held_interrupts.is_empty()
    }
    fn check_interrupt_vector(vector: usize) -> VCpuResult {
        if vector < 256 {
            Ok(())
        } else {
            Err(VCpuError::invalid_input("vector out of range").with_value(vector as u64))
        }
    }
    fn kicker(&self) -> Kick {
        self.kicked.clone()
    }
}

pub fn percpu_log() -> &'static Mutex<Vec<(usize, &'static str)>> {
    static LOG: Mutex<Vec<(usize, &'static str)>> = Mutex::new(Vec::new());
    &LOG
}

pub struct LoggedPerCpu {
    cpu: usize,
    enabled: bool,
}

impl AxArchPerCpu for LoggedPerCpu {
    fn new(cpu_id: usize) -> VCpuResult<Self> {
        Ok(Self {
            cpu: cpu_id,
            enabled: false,
        })
    }
    fn is_enabled(&self) -> bool {
        self.enabled
    }
    fn hardware_enable(&mut self) -> VCpuResult {
        percpu_log().lock().unwrap().push((self.cpu, "enable"));
        self.enabled = true;
        Ok(())
    }
    fn hardware_disable(&mut self) -> VCpuResult {
        percpu_log().lock().unwrap().push((self.cpu, "disable"));
        self.enabled = false;
        Ok(())
    }
}

pub const ENTRY: usize = 0x8000_0000;
pub const ROOT: usize = 0x4_0000;

/// A set-up vCPU (state Free).
pub fn free_vcpu(vm: usize, id: usize) -> AxVCpu<TestArch> {
    let builder = AxVCpu::<TestArch>::builder(vm, id, false).unwrap();
    // SAFETY: the test backend only records the root; it never walks it.
    unsafe { builder.ept_root(HostPhysAddr::from(ROOT)) }
        .entry(GuestPhysAddr::from(ENTRY))
        .setup(())
        .unwrap()
}

/// A set-up vCPU bound to the calling thread (state Ready).
pub fn ready_vcpu(vm: usize, id: usize) -> AxVCpu<TestArch> {
    let mut v = free_vcpu(vm, id);
    v.bind().unwrap();
    v
}

pub fn hypercall(nr: u64) -> AxVCpuExitReason {
    AxVCpuExitReason::Hypercall { nr, args: [0; 6] }
}

/// Gives `v` the test root through the unsafe runtime call.
pub fn set_test_root(v: &mut AxVCpu<TestArch>) -> VCpuResult {
    // SAFETY: the test backend only records the root; it never walks it.
    unsafe { v.set_ept_root(HostPhysAddr::from(ROOT)) }
}
