//! Kicking a vCPU out of `KVM_RUN` from another thread.
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
//! - A kicker writes `immediate_exit` under a mutex the vCPU takes to forget the address
//!   before its `kvm_run` page is unmapped, and signals a thread only while that thread is
//!   published as inside `run()`; the thread, when it unpublishes itself, waits for kickers
//!   caught between reading and signalling, so no signal goes to a thread that may have
//!   exited. The vCPU's own path takes no lock.
//!
//! A signal that reaches the vCPU thread outside `KVM_RUN` (it cannot, by the above, except
//! in the instants around it) would only make a blocking system call of that thread return
//! `EINTR`.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, Once};

use axvcpu::VCpuKick;
use vmm_sys_util::signal::{register_signal_handler, SIGRTMIN};

/// The real-time signal used to kick vCPU threads: `SIGRTMIN + 1`.
pub fn kick_signal() -> libc::c_int {
    SIGRTMIN() + 1
}

extern "C" fn ignore_kick(_: libc::c_int, _: *mut libc::siginfo_t, _: *mut libc::c_void) {}

static INSTALL: Once = Once::new();

/// Installs the no-op handler of [`kick_signal`] (once per process).
pub(crate) fn install_kick_handler() -> Result<(), vmm_sys_util::errno::Error> {
    let mut result = Ok(());
    INSTALL.call_once(|| result = register_signal_handler(kick_signal(), ignore_kick));
    result
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
    /// is pending: then `run()` reports `Kicked` without entering the guest.
    ///
    /// `in_run` is published before `pending` is read, and a kicker sets `pending` before
    /// it reads `in_run` (all sequentially consistent): so either this sees the kick, or the
    /// kicker sees the thread and signals it.
    pub(crate) fn enter(&self, thread: libc::pthread_t) -> bool {
        self.in_run.store(thread, Ordering::SeqCst);
        if self.pending.swap(false, Ordering::SeqCst) {
            self.leave_run();
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

    /// Called after `KVM_RUN` returned; `interrupted` if it returned `EINTR` (the kick, if
    /// any, is then consumed). Clears `immediate_exit`.
    pub(crate) fn leave(&self, run_page: usize) {
        self.leave_run();
        if let Some(flag) = flag_at(run_page) {
            flag.store(0, Ordering::SeqCst);
        }
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
            if let Some(flag) = flag_at(*addr) {
                flag.store(1, Ordering::SeqCst);
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

/// The `immediate_exit` byte at `addr` (none for 0).
fn flag_at<'a>(addr: usize) -> Option<&'a AtomicU8> {
    if addr == 0 {
        return None;
    }
    // SAFETY: a non-zero `addr` is `kvm_run.immediate_exit` of a vCPU whose `kvm_run`
    // mapping is alive for `'a`: kickers hold the lock of `immediate_exit`, which the vCPU
    // takes to set it to 0 before the mapping goes; the vCPU itself passes its own page. before the
    // mapping goes away. The kernel and the vCPU thread access the byte too; all accesses
    // from this process go through this atomic view.
    Some(unsafe { AtomicU8::from_ptr(std::ptr::with_exposed_provenance_mut(addr)) })
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
