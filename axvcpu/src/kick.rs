//! The kick protocol of bare-metal backends, written once: a request flag and the physical
//! CPU the vCPU is bound to. Each backend brings only its way of interrupting a CPU
//! ([`KickIpi`]): an SBI IPI, a GIC SGI, a local-APIC fixed IPI.
//!
//! Protocol (why no kick is lost):
//! - [`VCpuKick::kick`] stores the flag (`SeqCst`), then reads the bound CPU and, if there
//!   is one, interrupts it.
//! - The backend's run loop masks host interrupts, takes the flag with
//!   [`IpiKicker::take_request`] (a `SeqCst` swap) and enters the guest only if it was clear.
//!   A kick whose flag store came after that swap also sends its interrupt after it; the
//!   interrupt stays pending while host interrupts are masked and forces an exit as soon as
//!   the guest runs. A kick whose store came before is seen by the swap.
//! - When the kick interrupt made the guest exit, the backend takes the flag again
//!   ([`take_request`](IpiKicker::take_request)) before reporting
//!   [`Kicked`](crate::AxVCpuExitReason::Kicked): the swap orders the core's own exit
//!   request (stored before `kick()` was called) before the core reads it.
//! - `bind` records the CPU ([`IpiKicker::bind_to`]) before the first entry and `unbind`
//!   forgets it: a kick while unbound only sets the flag, which the next entry sees.

use alloc::sync::Arc;
use core::fmt;
use core::marker::PhantomData;
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use crate::VCpuKick;

/// How a backend interrupts physical CPU `cpu` (numbered as
/// [`AxVCpuHal::current_cpu_id`](crate::AxVCpuHal::current_cpu_id) numbers it) so that a
/// guest running there exits to the hypervisor.
pub trait KickIpi: 'static {
    /// Sends the kick interrupt to `cpu`. Called from any CPU, with any interrupt state.
    fn send_kick(cpu: usize);
}

/// `KickState::cpu` while the vCPU is not bound.
const NO_CPU: usize = usize::MAX;

#[derive(Debug)]
struct KickState {
    requested: AtomicBool,
    cpu: AtomicUsize,
}

/// A vCPU's kick for bare-metal backends: the [`VCpuKick`] the backend returns from
/// `kicker()`, and the flag its run loop takes (see the module docs for the protocol).
/// Clones share one flag.
pub struct IpiKicker<I: KickIpi> {
    state: Arc<KickState>,
    _ipi: PhantomData<fn() -> I>,
}

impl<I: KickIpi> IpiKicker<I> {
    /// A kick with no request pending, for a vCPU bound to no CPU.
    pub fn new() -> Self {
        Self {
            state: Arc::new(KickState {
                requested: AtomicBool::new(false),
                cpu: AtomicUsize::new(NO_CPU),
            }),
            _ipi: PhantomData,
        }
    }

    /// Records the CPU the vCPU is now bound to: kicks interrupt it from now on.
    pub fn bind_to(&self, cpu: usize) {
        self.state.cpu.store(cpu, Ordering::SeqCst);
    }

    /// Forgets the bound CPU: kicks only set the flag until the next [`bind_to`](Self::bind_to).
    pub fn unbind(&self) {
        self.state.cpu.store(NO_CPU, Ordering::SeqCst);
    }

    /// Takes the kick request: `true` if a kick came since the last take. Call it with host
    /// interrupts masked right before entering the guest (do not enter if `true`), and
    /// before reporting [`Kicked`](crate::AxVCpuExitReason::Kicked) after a kick interrupt.
    #[inline]
    pub fn take_request(&self) -> bool {
        self.state.requested.swap(false, Ordering::SeqCst)
    }
}

impl<I: KickIpi> Default for IpiKicker<I> {
    fn default() -> Self {
        Self::new()
    }
}

impl<I: KickIpi> Clone for IpiKicker<I> {
    fn clone(&self) -> Self {
        Self {
            state: self.state.clone(),
            _ipi: PhantomData,
        }
    }
}

impl<I: KickIpi> fmt::Debug for IpiKicker<I> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let cpu = self.state.cpu.load(Ordering::Relaxed);
        f.debug_struct("IpiKicker")
            .field("requested", &self.state.requested.load(Ordering::Relaxed))
            .field("cpu", &(cpu != NO_CPU).then_some(cpu))
            .finish()
    }
}

impl<I: KickIpi> VCpuKick for IpiKicker<I> {
    fn kick(&self) {
        self.state.requested.store(true, Ordering::SeqCst);
        let cpu = self.state.cpu.load(Ordering::SeqCst);
        if cpu != NO_CPU {
            I::send_kick(cpu);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::sync::atomic::AtomicUsize;
    use std::vec::Vec;

    static SENT: spin::Mutex<Vec<usize>> = spin::Mutex::new(Vec::new());
    static CALLS: AtomicUsize = AtomicUsize::new(0);

    struct Recorder;
    impl KickIpi for Recorder {
        fn send_kick(cpu: usize) {
            CALLS.fetch_add(1, Ordering::SeqCst);
            SENT.lock().push(cpu);
        }
    }

    #[test]
    fn a_kick_while_unbound_sets_the_flag_and_sends_nothing_then_interrupts_once_bound() {
        let k = IpiKicker::<Recorder>::new();
        let before = CALLS.load(Ordering::SeqCst);
        k.kick();
        assert_eq!(CALLS.load(Ordering::SeqCst), before, "no CPU to interrupt");
        assert!(k.take_request());
        assert!(!k.take_request(), "a request is taken once");
        k.clone().bind_to(3);
        k.kick();
        assert!(SENT.lock().contains(&3));
        assert!(k.take_request());
        k.unbind();
        let calls = CALLS.load(Ordering::SeqCst);
        k.kick();
        assert_eq!(CALLS.load(Ordering::SeqCst), calls);
    }
}
