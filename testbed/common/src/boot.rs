//! The boot flow after the entry assembly, the same on every architecture: memory on the
//! boot CPU, the other CPU started, virtualization enabled on each, then CPU 0 runs the
//! suite ([`run::main`](crate::run::main)) and the others serve the [`Mailbox`].

use core::marker::PhantomData;
use core::sync::atomic::{AtomicBool, Ordering};

use axvcpu::AxPerCpu;

use crate::arch::TestbedArch;
use crate::mailbox::Job;
use crate::mailbox::{Mailbox, PostError, Ticket};

/// The state of the testbed's `N` CPUs: which are online, their virtualization state and
/// their mailboxes. A testbed keeps one in a `static` and enters it from its assembly.
pub struct Cpus<A: TestbedArch, const N: usize> {
    online: [AtomicBool; N],
    memory_ready: AtomicBool,
    percpu: [spin::Mutex<Option<AxPerCpu<A::PerCpu>>>; N],
    mailbox: Mailbox<N>,
    _arch: PhantomData<fn() -> A>,
}

impl<A: TestbedArch, const N: usize> core::fmt::Debug for Cpus<A, N> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let mut l = f.debug_list();
        for i in 0..N {
            l.entry(&self.online(i));
        }
        l.finish()
    }
}

impl<A: TestbedArch, const N: usize> Default for Cpus<A, N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<A: TestbedArch, const N: usize> Cpus<A, N> {
    /// No CPU online yet.
    pub const fn new() -> Self {
        Self {
            online: [const { AtomicBool::new(false) }; N],
            memory_ready: AtomicBool::new(false),
            percpu: [const { spin::Mutex::new(None) }; N],
            mailbox: Mailbox::new(),
            _arch: PhantomData,
        }
    }

    /// Whether CPU `cpu` has enabled virtualization and is serving (or running) jobs.
    pub fn online(&self, cpu: usize) -> bool {
        self.online
            .get(cpu)
            .is_some_and(|o| o.load(Ordering::Acquire))
    }

    /// The virtualization state of `cpu`, enabled at boot for the whole run.
    pub fn percpu(&self, cpu: usize) -> Option<&spin::Mutex<Option<AxPerCpu<A::PerCpu>>>> {
        self.percpu.get(cpu)
    }

    /// Posts `job` to `cpu`'s mailbox.
    pub fn post(&self, cpu: usize, job: Job) -> Result<Ticket, PostError> {
        let ticket = self.mailbox.post(cpu, job)?;
        A::wake(cpu);
        Ok(ticket)
    }

    /// The Rust entry of every CPU (`boot` on the one firmware started): never returns.
    /// CPU 0 runs the conformance suite ([`run::main`](crate::run::main)).
    pub fn start(&'static self, cpu: usize, boot: bool) -> ! {
        self.start_with(cpu, boot, crate::run::main)
    }

    /// [`start`](Self::start) with another job for CPU 0 (`true` when it succeeded): an OS
    /// guest's hypervisor, say. The other CPUs serve their mailboxes as always.
    pub fn start_with(&'static self, cpu: usize, boot: bool, main: fn(&'static Self) -> bool) -> ! {
        if boot {
            // SAFETY: RAM past the image up to the end of RAM is unused until now, and
            // nothing has allocated yet (this is the boot CPU, before any other starts).
            unsafe { crate::hal::init_memory(A::image_end(), A::RAM_END) };
            A::boot_init(cpu);
            self.memory_ready.store(true, Ordering::Release);
            // CPU 0 runs the scenarios and CPU 1 serves jobs, whichever booted.
            let other = if cpu == 0 { 1 } else { 0 };
            let want_second = !A::BENCH || cpu != 0;
            if want_second && !A::start_cpu(other) {
                crate::say::<A>(format_args!(
                    "{}: {} {other} did not start; running on one CPU",
                    A::NAME,
                    A::CPU_WORD
                ));
            }
        } else {
            // The console and heap are the boot CPU's to set up first.
            while !self.memory_ready.load(Ordering::Acquire) {
                core::hint::spin_loop();
            }
        }
        self.enable_virtualization(cpu);
        if let Some(online) = self.online.get(cpu) {
            online.store(true, Ordering::Release);
        }
        if cpu == 0 {
            if !self.online(1) && !A::BENCH {
                // Give CPU 1 a moment to come up: the multi-CPU scenarios need it.
                let t0 = A::now_ns();
                while !self.online(1) && A::now_ns() - t0 < 500_000_000 {
                    core::hint::spin_loop();
                }
            }
            let ok = main(self);
            A::shutdown(ok)
        } else {
            self.mailbox.serve_with(cpu, A::idle)
        }
    }

    fn enable_virtualization(&self, cpu: usize) {
        let w = A::CPU_WORD;
        let mut percpu = match AxPerCpu::<A::PerCpu>::new(cpu) {
            Ok(p) => p,
            Err(e) => fail::<A>(format_args!("{w} {cpu}: per-CPU state: {e}")),
        };
        if let Err(e) = percpu.hardware_enable() {
            fail::<A>(format_args!("{w} {cpu}: hardware_enable: {e}"));
        }
        match self.percpu.get(cpu) {
            Some(slot) => *slot.lock() = Some(percpu),
            None => fail::<A>(format_args!("{w} {cpu}: beyond the testbed's CPUs")),
        }
    }
}

/// Reports `why` as fatal and ends the machine with a failure status: what a trap or a
/// panic in the hypervisor itself comes to.
pub fn fail<A: TestbedArch>(why: core::fmt::Arguments) -> ! {
    crate::say::<A>(format_args!("testbed: FATAL {why}"));
    A::shutdown(false)
}
