//! The part of a vCPU other CPUs and threads may touch while it runs: its state, its queue
//! of pending interrupts, and its kick.
//!
//! Protocol:
//! - `inject_interrupt` adds the vector to the pending set (a repeat of a vector still
//!   pending merges with it: see [`vectors`](crate::vectors)), wakes a `Blocked` vCPU to `Ready`, and kicks it if
//!   it is `Running`, so the interrupt reaches the guest without waiting for another exit.
//! - `kick` sets `exit_requested`, then kicks the backend. `run()` checks the flag before
//!   entering the guest and again whenever the backend reports `Kicked`; a backend kick
//!   that finds the flag clear was an injection kick and `run()` re-enters the guest after
//!   handing over the queue. So a kick is never lost, and only kicks asked for reach the
//!   hypervisor as `Kicked`.
//!
//! Ordering. Injection and `run()` each write one location and then read the other's: the
//! injector writes the pending set, then reads the state; `run()` writes the state
//! (`Running` before entry, `Blocked` after a halt), then reads the pending set. Acquire/release alone lets
//! both reads miss both writes (store buffering: x86 and RISC-V do it), which would leave a
//! vCPU `Blocked` with an interrupt queued, or entering the guest with one queued and never
//! kicked. So both sides put a sequentially consistent fence between their write and their
//! read (`Shared::inject` and `Shared::publish_state`): of the two fences, whichever
//! comes second sees the other side's write, so either the injector sees `Running` /
//! `Blocked` (and kicks / wakes), or `run()` sees the vector (and delivers it / stays
//! `Ready`).

use alloc::sync::Arc;
use core::marker::PhantomData;
use core::sync::atomic::{fence, AtomicBool, Ordering};

use crate::state::AtomicState;
use crate::vectors::{AtomicVectorSet, MAX_VECTORS};
use crate::{AxArchVCpu, VCpuError, VCpuId, VCpuKick, VCpuResult, VCpuState};

pub(crate) struct Shared<K> {
    pub(crate) id: VCpuId,
    pub(crate) state: AtomicState,
    pub(crate) exit_requested: AtomicBool,
    /// Injected vectors not yet handed to the backend.
    pending: AtomicVectorSet,
    kicker: K,
}

impl<K: VCpuKick> Shared<K> {
    pub(crate) fn new(id: VCpuId, kicker: K) -> Self {
        Self {
            id,
            state: AtomicState::new(VCpuState::Created),
            exit_requested: AtomicBool::new(false),
            pending: AtomicVectorSet::new(),
            kicker,
        }
    }

    pub(crate) fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Hands every pending vector to `deliver`, lowest first. A vector `deliver` refuses
    /// stays pending, so nothing is lost.
    pub(crate) fn drain(&self, deliver: impl FnMut(usize) -> VCpuResult) -> VCpuResult {
        self.pending.drain(deliver)
    }

    /// Sets the state `run()` moves to (`Running`, `Blocked`) and orders that write before
    /// the queue reads that follow it (see the module's "Ordering").
    pub(crate) fn publish_state(&self, s: VCpuState) {
        self.state.set(s);
        fence(Ordering::SeqCst);
    }

    /// Makes `vector` pending; `true` if that woke a `Blocked` vCPU.
    pub(crate) fn inject(&self, vector: usize) -> bool {
        self.pending.insert(vector);
        // Orders the insertion before the state reads below (see the module's "Ordering").
        fence(Ordering::SeqCst);
        let woke = self.state.transition(VCpuState::Blocked, VCpuState::Ready);
        if !woke && self.state.get() == VCpuState::Running {
            self.kicker.kick();
        }
        woke
    }

    pub(crate) fn kick(&self) {
        self.exit_requested.store(true, Ordering::Release);
        self.kicker.kick();
    }
}

/// A cloneable, thread-safe handle to a vCPU: inject interrupts, kick it out of `run()`,
/// read its state, from any CPU or thread. Get one with
/// [`AxVCpu::handle`](crate::AxVCpu::handle).
pub struct VCpuHandle<A: AxArchVCpu> {
    pub(crate) shared: Arc<Shared<A::Kicker>>,
    pub(crate) _arch: PhantomData<fn() -> A>,
}

impl<A: AxArchVCpu> Clone for VCpuHandle<A> {
    fn clone(&self) -> Self {
        Self {
            shared: self.shared.clone(),
            _arch: PhantomData,
        }
    }
}

impl<A: AxArchVCpu> core::fmt::Debug for VCpuHandle<A> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("VCpuHandle")
            .field("id", &self.shared.id)
            .field("state", &self.shared.state.get())
            .finish()
    }
}

impl<A: AxArchVCpu> VCpuHandle<A> {
    /// The vCPU's ids.
    pub fn id(&self) -> VCpuId {
        self.shared.id
    }

    /// The vCPU's current state (it may change as soon as this returns).
    pub fn state(&self) -> VCpuState {
        self.shared.state.get()
    }

    /// Makes interrupt `vector` pending for the guest: it is handed to the backend at the
    /// next guest entry, or at once if the vCPU is running (it is kicked to take it), and
    /// the guest takes it once. Injecting a vector that is still pending merges with it
    /// (one interrupt, as a real controller's pending bit; see
    /// [`AxArchVCpu::inject_interrupt`]). A `Blocked` vCPU becomes `Ready`, and the HAL's
    /// [`vcpu_woken`](crate::AxVCpuHal::vcpu_woken) hears of it. Fails
    /// (`InvalidInput`) only if the architecture cannot inject `vector`: unlike
    /// [`AxVCpu::inject_interrupt`](crate::AxVCpu::inject_interrupt) it does not look at the
    /// state, so a vector queued before `setup` waits for the first run, and one queued to
    /// an `Invalid` vCPU (or after the vCPU is dropped) is never delivered.
    pub fn inject_interrupt(&self, vector: usize) -> VCpuResult {
        inject::<A>(&self.shared, vector)
    }

    /// Makes the vCPU leave `run()` with [`Kicked`](crate::AxVCpuExitReason::Kicked): at once
    /// if it is running, else at its next `run()` (even if that comes after `bind`, or after
    /// an `unbind` and a new `bind`). Several kicks before that `run()` count as one.
    pub fn kick(&self) {
        self.shared.kick();
    }
}

/// Makes `vector` pending on the vCPU `shared` belongs to, and tells the HAL when that woke
/// it.
pub(crate) fn inject<A: AxArchVCpu>(shared: &Shared<A::Kicker>, vector: usize) -> VCpuResult {
    check_vector::<A>(vector)?;
    if shared.inject(vector) {
        <A::Hal as crate::AxVCpuHal>::vcpu_woken(shared.id);
    }
    Ok(())
}

/// Refuses a vector the architecture cannot inject, or one the pending set cannot hold.
pub(crate) fn check_vector<A: AxArchVCpu>(vector: usize) -> VCpuResult {
    if vector >= MAX_VECTORS {
        return Err(VCpuError::invalid_input(
            "interrupt vectors are below axvcpu::MAX_VECTORS (1024)",
        )
        .with_value(vector as u64));
    }
    A::check_interrupt_vector(vector)
}
