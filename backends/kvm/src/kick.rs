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
//! - The state (the `immediate_exit` address and the thread inside `KVM_RUN`) sits behind
//!   one mutex, so a kicker never writes into an unmapped `kvm_run` page (the vCPU clears
//!   the address before unmapping it) and never signals a thread that left `run()`
//!   (a thread in `run()` cannot exit before it clears its entry).
//!
//! A signal that reaches the vCPU thread outside `KVM_RUN` (it cannot, by the above, except
//! in the instants around it) would only make a blocking system call of that thread return
//! `EINTR`.

use std::sync::atomic::{AtomicU8, Ordering};
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

#[derive(Debug, Default)]
struct KickState {
    /// Address of `kvm_run.immediate_exit`, 0 once the vCPU is gone.
    immediate_exit: usize,
    /// The thread inside (or entering) `KVM_RUN`.
    in_run: Option<libc::pthread_t>,
    /// A kick not yet reported as `Kicked`.
    pending: bool,
}

/// What a [`Kicker`] and its vCPU share.
#[derive(Debug, Default)]
pub(crate) struct KickTarget {
    state: Mutex<KickState>,
}

impl KickTarget {
    fn lock(&self) -> std::sync::MutexGuard<'_, KickState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records where `immediate_exit` lives (0: nowhere any more).
    pub(crate) fn set_immediate_exit(&self, addr: usize) {
        self.lock().immediate_exit = addr;
    }

    /// Called by `thread` before `KVM_RUN`. Returns `true` (and consumes the kick) if a kick
    /// is pending: then `run()` reports `Kicked` without entering the guest.
    pub(crate) fn enter(&self, thread: libc::pthread_t) -> bool {
        let mut st = self.lock();
        if std::mem::take(&mut st.pending) {
            return true;
        }
        st.in_run = Some(thread);
        false
    }

    /// Called after `KVM_RUN` returned; `interrupted` if it returned `EINTR` (the kick, if
    /// any, is then consumed).
    pub(crate) fn leave(&self, interrupted: bool) {
        let mut st = self.lock();
        st.in_run = None;
        if interrupted {
            st.pending = false;
        }
        if let Some(flag) = flag_at(&st) {
            flag.store(0, Ordering::SeqCst);
        }
    }

    fn kick(&self) {
        let mut st = self.lock();
        st.pending = true;
        if let Some(flag) = flag_at(&st) {
            flag.store(1, Ordering::SeqCst);
        }
        if let Some(thread) = st.in_run {
            // SAFETY: `thread` is inside `run()` of a live vCPU (it clears `in_run` under this
            // lock before leaving), so it is a running thread of this process; the signal's
            // handler is installed before any vCPU exists.
            let rc = unsafe { libc::pthread_kill(thread, kick_signal()) };
            if rc != 0 {
                log::warn!("kick: pthread_kill failed: {rc}");
            }
        }
    }
}

/// The `immediate_exit` byte, borrowed for as long as the caller holds the state's lock.
fn flag_at(st: &KickState) -> Option<&AtomicU8> {
    let addr = st.immediate_exit;
    if addr == 0 {
        return None;
    }
    // SAFETY: a non-zero `addr` is `kvm_run.immediate_exit` of a vCPU whose `kvm_run`
    // mapping is alive: the vCPU sets it to 0 (under the lock the borrow of `st` holds) before the
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
