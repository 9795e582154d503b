//! What the two random-guest scenarios (`garbage`, `chaos`) share: a seeded generator, the
//! watchdog that kicks a run that takes too long, the check of an exit against the memory
//! map, and one guarded `run`.

use alloc::boxed::Box;
use alloc::format;
use alloc::string::String;
use alloc::sync::Arc;
use core::sync::atomic::{AtomicBool, Ordering};

use axvcpu::{
    AxArchVCpu, AxVCpu, AxVCpuExitReason, GuestPhysAddr, VCpuError, VCpuHandle, VCpuState,
};

use super::{ArchOf, Waiter};
use crate::{Join, Layout, Platform};

/// How long one `run()` of `garbage` may take before the watchdog kicks it.
pub(crate) const RUN_BUDGET_NS: u64 = 20_000_000;

/// xorshift64*: enough randomness for instruction soup, reproducible from the seed.
#[derive(Debug, Clone)]
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }

    pub(crate) fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A byte (the high bits, the best of xorshift*).
    pub(crate) fn byte(&mut self) -> u8 {
        (self.next() >> 56) as u8
    }

    /// Uniform in `0..n` (`n > 0`; the bias is irrelevant here).
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        (self.next() >> 16) % n.max(1)
    }

    /// `true` with probability `num / den`.
    pub(crate) fn chance(&mut self, num: u64, den: u64) -> bool {
        self.below(den) < num
    }

    /// One element of `items` (not empty).
    pub(crate) fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }
}

/// Kicks the armed vCPU when its deadline passes; runs on another CPU.
pub(crate) struct Watchdog<A: AxArchVCpu> {
    armed: spin::Mutex<Option<(u64, VCpuHandle<A>)>>,
    stop: AtomicBool,
    clock: fn() -> u64,
}

impl<A: AxArchVCpu> Watchdog<A> {
    fn watch(&self, wait: Waiter) {
        while !self.stop.load(Ordering::Acquire) {
            if let Some((deadline, handle)) = &*self.armed.lock() {
                if (wait.clock)() > *deadline {
                    handle.kick();
                }
            }
            wait.until(1_000_000, || self.stop.load(Ordering::Acquire));
        }
    }

    /// Ends the watchdog and waits for its CPU.
    pub(crate) fn stop(&self, watcher: Box<dyn Join>) -> Result<(), String> {
        self.stop.store(true, Ordering::Release);
        if watcher.join() {
            Ok(())
        } else {
            Err("the watchdog CPU did not finish".into())
        }
    }

    /// One `run()` under the watchdog, kicked after `budget_ns`: `Ok(Ok(exit))`, `Ok(Err(error))` when `run` failed
    /// with the vCPU `Invalid` (a defined end), `Err` for any other failure.
    pub(crate) fn run(
        &self,
        v: &mut AxVCpu<A>,
        budget_ns: u64,
    ) -> Result<Result<AxVCpuExitReason, VCpuError>, String> {
        *self.armed.lock() = Some(((self.clock)() + budget_ns, v.handle()));
        let result = v.run();
        *self.armed.lock() = None;
        match result {
            Ok(exit) => Ok(Ok(exit)),
            Err(e) if v.state() == VCpuState::Invalid => Ok(Err(e)),
            Err(e) => Err(format!(
                "run() failed ({e}) but the vCPU is {:?}",
                v.state()
            )),
        }
    }
}

/// The watchdog of platform `P`'s backend.
pub(crate) type DogOf<P> = Watchdog<ArchOf<P>>;

/// A started watchdog and the job running it.
pub(crate) type Started<P> = (Arc<DogOf<P>>, Box<dyn Join>);

/// Starts a watchdog on CPU 1; [`Watchdog::stop`] ends it.
pub(crate) fn start_watchdog<P: Platform>(p: &P) -> Result<Started<P>, String> {
    let wait = Waiter::of(p);
    let dog = Arc::new(Watchdog {
        armed: spin::Mutex::new(None),
        stop: AtomicBool::new(false),
        clock: wait.clock,
    });
    let job = dog.clone();
    let watcher = p
        .spawn_on_cpu(1, Box::new(move || job.watch(wait)))
        .map_err(|e| format!("spawn_on_cpu: {e}"))?;
    Ok((dog, watcher))
}

pub(crate) fn in_ram(layout: &Layout, addr: GuestPhysAddr) -> bool {
    let base = layout.ram_base.as_usize();
    (base..base + layout.ram_size).contains(&addr.as_usize())
}

/// Checks one exit against the memory map; returns whether the program may go on.
pub(crate) fn check_exit(layout: &Layout, exit: &AxVCpuExitReason) -> Result<bool, String> {
    match *exit {
        AxVCpuExitReason::MmioRead { addr, .. } | AxVCpuExitReason::MmioWrite { addr, .. }
            if in_ram(layout, addr) =>
        {
            Err(format!("MMIO exit at {addr:?}, which is mapped RAM"))
        }
        AxVCpuExitReason::NestedPageFault { addr, .. }
            if in_ram(layout, addr) && addr.as_usize() & !0xfff != layout.ro_page.as_usize() =>
        {
            Err(format!(
                "nested page fault at {addr:?}, which is mapped read-write RAM"
            ))
        }
        // A fault repeats until the hypervisor fixes the mapping; power and entry failures end.
        AxVCpuExitReason::NestedPageFault { .. }
        | AxVCpuExitReason::SystemDown
        | AxVCpuExitReason::CpuDown { .. }
        | AxVCpuExitReason::FailEntry { .. }
        | AxVCpuExitReason::Kicked => Ok(false),
        _ => Ok(true),
    }
}
