//! Kicking a vCPU out of `KVM_RUN` from another thread: the hosted kick.
//!
//! This is not [`IpiKicker`](axvcpu::IpiKicker), the bare-metal backends' protocol, and
//! cannot be: a hosted vCPU's "CPU" is a thread inside a system call, which no IPI reaches
//! and which has no interrupts to mask around its entry check. What stops `KVM_RUN` is
//! KVM's own `kvm_run.immediate_exit` flag (before entry) and a signal (during it), so this
//! module keeps its own flag, signal and thread bookkeeping. It keeps the same promises
//! ([`VCpuKick`]): a kick is never lost, and at worst one `Kicked` too many is reported.
//!
//! Protocol (see also `axvcpu`'s `handle` module):
//!
//! - The kicker stores 1 into the vCPU's `kvm_run.immediate_exit`, then, if the vCPU's thread
//!   is inside `KVM_RUN` (or about to enter it), sends it [`kick_signal`]. The signal's
//!   handler does nothing; it only makes `KVM_RUN` return `EINTR`. It is installed once per
//!   process, without `SA_RESTART`.
//! - A kick before `KVM_RUN`: KVM sees `immediate_exit` and returns `EINTR` at once.
//!   A kick during `KVM_RUN`: the signal makes it return `EINTR` within microseconds, even
//!   if the guest spins with interrupts disabled. `run()` reports both as
//!   [`Kicked`](axvcpu::AxVCpuExitReason::Kicked) and the guest resumes where it was.
//! - Every kick also sets a `pending` flag. `run()` checks it before `KVM_RUN` (and returns
//!   `Kicked` without entering the guest if set) and consumes it when `KVM_RUN` returns
//!   `EINTR`; after each `KVM_RUN` it clears `immediate_exit`. So a kick that lands while
//!   `KVM_RUN` returns for another reason is reported by the next `run()`: never lost, at
//!   worst one extra `Kicked`, which the core absorbs.
//! - A kicker writes `immediate_exit` atomically through a raw pointer (the crate never
//!   holds a reference to `kvm_run`, see the `switch` module), under a mutex the vCPU takes to
//!   forget the address before its `kvm_run` page is unmapped. It signals a thread only while
//!   that thread is published as inside `run()`; the thread, when it unpublishes itself,
//!   waits for kickers caught between reading and signalling. So no signal goes to a thread
//!   that may have exited, even if its `pthread_t` has since been reused. The vCPU's own
//!   path takes no lock.
//!
//! A signal that reaches the vCPU thread outside `KVM_RUN` (it cannot, by the above, except
//! in the instants around it) would only make a blocking system call of that thread return
//! `EINTR`.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use axvcpu::VCpuKick;
use vmm_sys_util::signal::{register_signal_handler, SIGRTMIN};

/// The real-time signal used to kick vCPU threads: `SIGRTMIN + 1`.
pub fn kick_signal() -> libc::c_int {
    SIGRTMIN() + 1
}

extern "C" fn ignore_kick(_: libc::c_int, _: *mut libc::siginfo_t, _: *mut libc::c_void) {}

/// The outcome of installing the handler: 0, or the `errno` it failed with.
static INSTALLED: OnceLock<i32> = OnceLock::new();

/// Installs the no-op handler of [`kick_signal`] (once per process; it replaces any other
/// handler of that signal). A failure is remembered and reported to every later caller:
/// without the handler a kick's signal would terminate the process.
pub(crate) fn install_kick_handler() -> Result<(), vmm_sys_util::errno::Error> {
    let errno =
        *INSTALLED.get_or_init(
            || match register_signal_handler(kick_signal(), ignore_kick) {
                Ok(()) => 0,
                Err(e) => e.errno(),
            },
        );
    match errno {
        0 => Ok(()),
        e => Err(vmm_sys_util::errno::Error::new(e)),
    }
}

/// What a [`Kicker`] and its vCPU share.
#[derive(Debug, Default)]
pub(crate) struct KickTarget {
    /// Address of `kvm_run.immediate_exit`, 0 once the vCPU is gone; kickers hold this
    /// lock while they write through it.
    immediate_exit: Mutex<usize>,
    /// The thread inside (or entering) `KVM_RUN` (a `pthread_t`); 0 when none.
    in_run: AtomicU64,
    /// Kickers between reading `in_run` and signalling that thread.
    signalling: AtomicU32,
    /// A kick not yet reported as `Kicked`.
    pending: AtomicBool,
}

impl KickTarget {
    /// Records where `immediate_exit` lives (0: nowhere any more).
    pub(crate) fn set_immediate_exit(&self, addr: usize) {
        *self
            .immediate_exit
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = addr;
    }

    /// Called by `thread` before `KVM_RUN`. Returns `true` (and consumes the kick) if a kick
    /// is pending: then `run()` reports `Kicked` without entering the guest, and clears the
    /// kick's `immediate_exit` at `flag` so the next `KVM_RUN` does not bounce off it too.
    ///
    /// `in_run` is published before `pending` is read, and a kicker sets `pending` before
    /// it reads `in_run` (all sequentially consistent): so either this sees the kick, or the
    /// kicker sees the thread and signals it.
    pub(crate) fn enter(&self, thread: libc::pthread_t, flag: usize) -> bool {
        self.in_run.store(thread, Ordering::SeqCst);
        if self.pending.swap(false, Ordering::SeqCst) {
            self.leave(flag);
            return true;
        }
        false
    }

    /// Unpublishes the thread, then waits for kickers that may still signal it, so the
    /// thread cannot leave `run()` (and exit) while a signal to it is in flight.
    fn leave_run(&self) {
        self.in_run.store(0, Ordering::SeqCst);
        while self.signalling.load(Ordering::SeqCst) != 0 {
            // A kicker is inside pthread_kill (or was preempted there): let it finish.
            std::thread::yield_now();
        }
    }

    /// Called after `KVM_RUN` returned (or instead of it): unpublishes the thread and clears
    /// `immediate_exit` at `flag`, the owning vCPU's own, live `kvm_run` page. A kick that
    /// lands after this is still `pending`, so the next `run()` reports it.
    pub(crate) fn leave(&self, flag: usize) {
        self.leave_run();
        // SAFETY: `flag` is `immediate_exit` in the caller's own `kvm_run` mapping, alive
        // while the caller holds its vCPU.
        unsafe { store_flag(flag, 0) };
    }

    /// Consumes a pending kick (after `KVM_RUN` returned `EINTR`).
    pub(crate) fn consume(&self) {
        self.pending.store(false, Ordering::SeqCst);
    }

    fn kick(&self) {
        self.pending.store(true, Ordering::SeqCst);
        {
            let addr = self
                .immediate_exit
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            if *addr != 0 {
                // SAFETY: a non-zero address is `immediate_exit` of a live `kvm_run`
                // mapping: the vCPU sets it to 0 under this lock before the mapping goes.
                unsafe { store_flag(*addr, 1) };
            }
        }
        self.signalling.fetch_add(1, Ordering::SeqCst);
        let thread = self.in_run.load(Ordering::SeqCst);
        if thread != 0 {
            // SAFETY: `thread` is inside `run()` of a live vCPU: it cannot leave `run()`
            // before `signalling` drops back to 0 (see `leave_run`), so it is a running
            // thread of this process; the signal's handler is installed before any vCPU
            // exists.
            let rc = unsafe { libc::pthread_kill(thread, kick_signal()) };
            if rc != 0 {
                log::warn!("kick: pthread_kill failed: {rc}");
            }
        }
        self.signalling.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Stores `value` into the `immediate_exit` byte at `addr`.
///
/// # Safety
/// `addr` must be `kvm_run.immediate_exit` of a `kvm_run` mapping that stays mapped for the
/// duration of the call.
///
/// Why an atomic through a raw pointer is sound while the vCPU thread is in KVM or in this
/// crate: every access this process makes to the byte is one of these atomic stores (the
/// crate forms no reference to `kvm_run`, see `switch`; kvm-ioctls' decoding reference never
/// touches this byte), so there is no data race and no reference whose bytes it changes;
/// the kernel reads the byte only at the start of `KVM_RUN`.
unsafe fn store_flag(addr: usize, value: u8) {
    // SAFETY: the caller guarantees the byte is mapped; a `u8` is always aligned; all
    // accesses to it from this process are atomic (see above).
    let flag = unsafe { AtomicU8::from_ptr(std::ptr::with_exposed_provenance_mut(addr)) };
    flag.store(value, Ordering::SeqCst);
}

/// The calling thread.
pub(crate) fn pthread_self() -> libc::pthread_t {
    // SAFETY: pthread_self has no preconditions.
    unsafe { libc::pthread_self() }
}

/// Kicks a [`KvmVCpu`](crate::KvmVCpu) out of `run()` from any thread: sets
/// `kvm_run.immediate_exit`, then signals the vCPU's thread if it is inside `KVM_RUN`.
#[derive(Debug, Clone)]
pub struct Kicker(pub(crate) Arc<KickTarget>);

impl VCpuKick for Kicker {
    fn kick(&self) {
        self.0.kick();
    }
}
