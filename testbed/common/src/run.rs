//! What CPU 0 runs: the conformance suite through [`TestbedPlatform`] (one pass per run
//! mode the testbed names), the testbed's self-tests and the frame-leak check, or with the
//! `bench` feature the hypercall round-trip benchmark.

use alloc::boxed::Box;

use axvcpu::{AxArchVCpu, AxVCpu, AxVCpuExitReason, VCpuError, VCpuResult};
use axvcpu_conformance::contract::{GuestProgram, CHAOS_CODE_BYTES, CHAOS_CODE_OFFSET};
use axvcpu_conformance::{Join, Platform, PlatformInfo, TestVm};

use crate::arch::TestbedArch;
use crate::boot::Cpus;
use crate::console::Prefixed;
use crate::hal::frames_in_use;
use crate::vm::TestbedVm;
use crate::{say, HC_BENCH};

/// The conformance `Platform` of testbed `A` with `N` CPUs, in one run mode (`setup`).
pub struct TestbedPlatform<A: TestbedArch, const N: usize> {
    setup: A::Setup,
    cpus: &'static Cpus<A, N>,
    count: usize,
}

impl<A: TestbedArch, const N: usize> core::fmt::Debug for TestbedPlatform<A, N> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("TestbedPlatform")
            .field("cpus", &self.count)
            .finish()
    }
}

impl<A: TestbedArch, const N: usize> TestbedPlatform<A, N> {
    /// A platform running VMs with `setup` on the `count` first CPUs of `cpus`.
    pub fn new(setup: A::Setup, cpus: &'static Cpus<A, N>, count: usize) -> Self {
        Self { setup, cpus, count }
    }
}

impl<A: TestbedArch, const N: usize> Platform for TestbedPlatform<A, N> {
    type Vm = TestbedVm<A>;

    fn info(&self) -> PlatformInfo {
        A::info()
    }

    fn not_applicable(&self, program: GuestProgram) -> Option<&'static str> {
        A::program(&self.setup, program).err()
    }

    fn create_vm(&mut self, program: GuestProgram) -> VCpuResult<TestbedVm<A>> {
        let code = A::program(&self.setup, program).map_err(VCpuError::unsupported)?;
        let setup = A::with_sysreg_traps(self.setup, program == GuestProgram::SysReg);
        TestbedVm::new(code, setup)
    }

    fn create_raw_vm(&mut self, code: &[u8]) -> VCpuResult<TestbedVm<A>> {
        TestbedVm::new(code, A::with_sysreg_traps(self.setup, false))
    }

    fn create_chaos_vm(&mut self, code: &[u8]) -> VCpuResult<TestbedVm<A>> {
        if code.len() > CHAOS_CODE_BYTES {
            return Err(
                VCpuError::invalid_input("chaos code too large").with_value(code.len() as u64)
            );
        }
        let runtime = A::chaos_runtime(&self.setup).map_err(VCpuError::unsupported)?;
        let vm = TestbedVm::new(runtime, A::with_sysreg_traps(self.setup, false))?;
        vm.load(vm.entry() + CHAOS_CODE_OFFSET, code)?;
        Ok(vm)
    }

    fn cpu_count(&self) -> usize {
        self.count
    }

    fn spawn_on_cpu(
        &self,
        cpu: usize,
        job: Box<dyn FnOnce() + Send + 'static>,
    ) -> VCpuResult<Box<dyn Join>> {
        if cpu == A::cpu_id() || !self.cpus.online(cpu) {
            return Err(
                VCpuError::invalid_input("spawn_on_cpu: not another online CPU")
                    .with_value(cpu as u64),
            );
        }
        let ticket = self.cpus.post(cpu, job).map_err(|_| {
            VCpuError::invalid_input("spawn_on_cpu: that CPU is busy").with_value(cpu as u64)
        })?;
        Ok(Box::new(ticket))
    }

    fn clock(&self) -> fn() -> u64 {
        A::now_ns
    }
}

/// CPU 0's run; `true` if everything passed.
///
/// The suite runs first with [`TestbedArch::first_pass`] (what `cargo xtask test`
/// reports), then again with [`TestbedArch::second_pass`] if there is one, its lines
/// prefixed; then the testbed's self-tests, then the check that no frame leaked.
pub fn main<A: TestbedArch, const N: usize>(cpus: &'static Cpus<A, N>) -> bool {
    let first = A::first_pass();
    let count = if cpus.online(1) { 2 } else { 1 };
    say::<A>(format_args!(
        "{}: {count} CPUs, {}",
        A::NAME,
        A::describe(&first)
    ));
    if A::BENCH {
        return bench::<A>(first);
    }
    say::<A>(format_args!(
        "conformance: {} scenarios",
        axvcpu_conformance::SCENARIOS.len()
    ));
    let frames_before = frames_in_use();
    let t0 = A::now_ns();
    let summary = {
        let mut platform = TestbedPlatform::new(first, cpus, count);
        let mut w = A::console().writer();
        axvcpu_conformance::run_all(&mut platform, &mut w)
    };
    let ms = (A::now_ns() - t0) / 1_000_000;
    say::<A>(format_args!(
        "{}: suite took {ms} ms (guest clock)",
        A::NAME
    ));
    let again = match A::second_pass() {
        Some((prefix, setup)) => {
            let mut platform = TestbedPlatform::new(setup, cpus, count);
            let mut w = A::console().writer();
            let mut w = Prefixed::new(&mut w, prefix);
            axvcpu_conformance::run_all(&mut platform, &mut w).ok()
        }
        None => true,
    };
    let selftests = A::selftests(&first);
    let leaked = frames_in_use() as isize - frames_before as isize;
    say::<A>(format_args!("{}: frames leaked: {leaked}", A::NAME));
    summary.ok() && again && selftests && leaked == 0
}

/// Round trips the benchmark counts, after a warm-up of [`BENCH_WARMUP`].
pub const BENCH_N: u64 = 10_000;
/// Round trips run before counting.
pub const BENCH_WARMUP: u64 = 100;

/// [`TestbedArch::bench_counter`] over [`BENCH_N`] round trips of `run` (after a warm-up).
fn count<A: TestbedArch>(mut run: impl FnMut() -> VCpuResult<AxVCpuExitReason>) -> VCpuResult<u64> {
    let mut step = |n: u64| -> VCpuResult {
        for _ in 0..n {
            match run()? {
                AxVCpuExitReason::Hypercall { nr: HC_BENCH, .. } => {}
                _ => return Err(VCpuError::unsupported("bench: unexpected exit")),
            }
        }
        Ok(())
    };
    step(BENCH_WARMUP)?;
    let c0 = A::bench_counter();
    step(BENCH_N)?;
    Ok(A::bench_counter() - c0)
}

/// Hypercall round trips: the guest loops on a hypercall (2 guest instructions per
/// iteration). Counted twice: through `AxVCpu::run` (what a hypervisor pays) and through
/// the backend's `AxArchVCpu::run` alone (world switch and exit decoding). QEMU runs with
/// `-icount shift=0`, so the counter counts instructions exactly.
fn bench<A: TestbedArch>(first: A::Setup) -> bool {
    A::bench_prepare();
    let setup = A::with_sysreg_traps(first, false);
    let through_core = || -> VCpuResult<u64> {
        let vm = TestbedVm::<A>::new(A::bench_code(), setup)?;
        let mut v: AxVCpu<A::VCpu> = vm.new_vcpu(0, vm.entry())?;
        v.bind()?;
        let n = count::<A>(|| v.run());
        v.unbind()?;
        n
    };
    let backend_only = || -> VCpuResult<u64> {
        let vm = TestbedVm::<A>::new(A::bench_code(), setup)?;
        let mut v = A::VCpu::new(vm.vm_id(), 0, ())?;
        v.set_entry(vm.entry())?;
        // SAFETY: the VM's nested page table, alive (with the RAM it maps) until `vm`
        // drops, after the vCPU (declared later).
        unsafe { v.set_ept_root(vm.ept_root())? };
        v.setup(setup)?;
        v.bind()?;
        let n = count::<A>(|| v.run());
        v.unbind()?;
        n
    };
    match (through_core(), backend_only()) {
        (Ok(core), Ok(arch)) => {
            let per = |n: u64| n as f64 / BENCH_N as f64 - 2.0;
            say::<A>(format_args!(
                "bench: {BENCH_N} hypercall round trips, guest loop `{}` (2 instructions)",
                A::BENCH_LOOP
            ));
            say::<A>(format_args!(
                "bench: hypervisor instructions per round trip: {:.1}",
                per(core)
            ));
            say::<A>(format_args!(
                "bench: of which backend (AxArchVCpu::run alone): {:.1}",
                per(arch)
            ));
            true
        }
        (Err(e), _) | (_, Err(e)) => {
            say::<A>(format_args!("bench: FAILED: {e}"));
            false
        }
    }
}
