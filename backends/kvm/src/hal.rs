//! [`HostedHal`]: host services for a hypervisor that is an ordinary Linux process.

use std::alloc::{alloc_zeroed, dealloc, Layout};
use std::cell::Cell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use axvcpu::MAX_CPUS;
use axvcpu::{AxArchVCpu, AxVCpuHal, HostPhysAddr, HostVirtAddr, VCpuHandle, VCpuId, VCpuState};

const FRAME: usize = 4096;

/// Host services for a hosted hypervisor.
///
/// - **Frames** are zeroed, 4 KiB-aligned allocations from the process heap.
/// - **Addresses are identities**: a "host-physical" address is the frame's address in this
///   process, so `phys_to_virt` and `virt_to_phys` return their argument. This is what lets
///   the KVM backend hand `phys_to_virt(hpa)` to KVM as a memory slot's `userspace_addr`.
///   Only addresses from this HAL's allocators (or other memory of this process) are
///   meaningful.
/// - **CPU ids** are small per-thread numbers below [`MAX_CPUS`]: each thread gets the
///   lowest free id when it first asks, and the id is freed when the thread exits.
///
/// - **Wake-ups** ([`vcpu_woken`](AxVCpuHal::vcpu_woken)) wake every thread waiting in
///   [`wait_while_blocked`], so a thread waits for a halted vCPU without polling.
///
/// [`live_frames`](Self::live_frames) counts the frames allocated and not yet freed, so
/// tests can prove nothing leaks.
#[derive(Debug, Clone, Copy, Default)]
pub struct HostedHal;

/// Live allocations: address → (layout, frame count).
static ALLOCS: Mutex<Option<HashMap<usize, (Layout, usize)>>> = Mutex::new(None);
static LIVE_FRAMES: AtomicUsize = AtomicUsize::new(0);

fn allocate(count: usize, align_frames: usize) -> Option<HostPhysAddr> {
    let size = count.checked_mul(FRAME)?;
    let align = align_frames.max(1).checked_mul(FRAME)?;
    if size == 0 || !align.is_power_of_two() {
        return None;
    }
    let layout = Layout::from_size_align(size, align).ok()?;
    // SAFETY: `layout` has a non-zero size.
    let ptr = unsafe { alloc_zeroed(layout) };
    if ptr.is_null() {
        return None;
    }
    let addr = ptr.expose_provenance();
    let mut allocs = ALLOCS.lock().unwrap_or_else(|e| e.into_inner());
    allocs
        .get_or_insert_with(HashMap::new)
        .insert(addr, (layout, count));
    LIVE_FRAMES.fetch_add(count, Ordering::AcqRel);
    Some(HostPhysAddr::from(addr))
}

fn free(paddr: HostPhysAddr, count: Option<usize>) {
    let addr = paddr.as_usize();
    let mut allocs = ALLOCS.lock().unwrap_or_else(|e| e.into_inner());
    let Some(map) = allocs.as_mut() else {
        log::error!("HostedHal: freeing {addr:#x}, which was never allocated");
        return;
    };
    match map.get(&addr) {
        Some(&(_, n)) if count.is_some_and(|c| c != n) => {
            log::error!("HostedHal: freeing {addr:#x} as {count:?} frames, allocated as {n}");
        }
        Some(&(layout, n)) => {
            map.remove(&addr);
            LIVE_FRAMES.fetch_sub(n, Ordering::AcqRel);
            // SAFETY: `addr` was returned by `alloc_zeroed` with `layout` and is removed from
            // the table, so it is freed exactly once.
            unsafe { dealloc(std::ptr::with_exposed_provenance_mut(addr), layout) };
        }
        None => log::error!("HostedHal: freeing {addr:#x}, which is not allocated"),
    }
}

impl HostedHal {
    /// The number of 4 KiB frames allocated through this HAL and not yet freed.
    pub fn live_frames() -> usize {
        LIVE_FRAMES.load(Ordering::Acquire)
    }
}

/// Which CPU ids are taken by live threads.
static CPU_IDS: Mutex<[bool; MAX_CPUS]> = Mutex::new([false; MAX_CPUS]);

/// A thread's CPU id, given back when the thread exits.
struct CpuIdSlot(Cell<Option<usize>>);

impl Drop for CpuIdSlot {
    fn drop(&mut self) {
        if let Some(id) = self.0.get() {
            let mut ids = CPU_IDS.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(slot) = ids.get_mut(id) {
                *slot = false;
            }
        }
    }
}

thread_local! {
    static CPU_ID: CpuIdSlot = const { CpuIdSlot(Cell::new(None)) };
}

fn thread_cpu_id() -> usize {
    CPU_ID
        .try_with(|slot| {
            if let Some(id) = slot.0.get() {
                return id;
            }
            let mut ids = CPU_IDS.lock().unwrap_or_else(|e| e.into_inner());
            match ids.iter().position(|taken| !taken) {
                Some(id) => {
                    ids[id] = true;
                    slot.0.set(Some(id));
                    id
                }
                // Every id is taken: an out-of-range id, which `bind` refuses.
                None => MAX_CPUS,
            }
        })
        // The thread is exiting: no id.
        .unwrap_or(MAX_CPUS)
}

impl AxVCpuHal for HostedHal {
    fn alloc_frame() -> Option<HostPhysAddr> {
        allocate(1, 1)
    }

    fn dealloc_frame(paddr: HostPhysAddr) {
        free(paddr, Some(1))
    }

    fn alloc_contiguous_frames(count: usize, align_frames: usize) -> Option<HostPhysAddr> {
        allocate(count, align_frames)
    }

    fn dealloc_contiguous_frames(paddr: HostPhysAddr, count: usize) {
        free(paddr, Some(count))
    }

    fn phys_to_virt(paddr: HostPhysAddr) -> HostVirtAddr {
        HostVirtAddr::from(paddr.as_usize())
    }

    fn virt_to_phys(vaddr: HostVirtAddr) -> HostPhysAddr {
        HostPhysAddr::from(vaddr.as_usize())
    }

    fn current_cpu_id() -> usize {
        thread_cpu_id()
    }

    fn vcpu_woken(_id: VCpuId) {
        // Taking the lock orders this notification after the waiter's state check (see
        // `wait_while_blocked`): the waiter either saw the new state, or is already asleep
        // on the condition variable and hears this.
        let mut wakes = WAKES.lock().unwrap_or_else(|e| e.into_inner());
        *wakes = wakes.wrapping_add(1);
        WOKEN.notify_all();
    }
}

/// Wake-ups so far (under the lock the waiters check the state with).
static WAKES: Mutex<u64> = Mutex::new(0);
static WOKEN: Condvar = Condvar::new();

/// Waits until the vCPU of `handle` is no longer [`Blocked`](VCpuState::Blocked) (an
/// injected interrupt woke it after a [`Halt`](axvcpu::AxVCpuExitReason::Halt), or it was
/// unbound), or until `timeout` passes. Returns `true` if it is no longer `Blocked`, `false`
/// on timeout. Returns at once if it is not `Blocked` now.
///
/// No polling: the thread sleeps on a condition variable that [`HostedHal`]'s
/// [`vcpu_woken`](AxVCpuHal::vcpu_woken) signals whenever an injection wakes a vCPU of
/// this process (any vCPU: a waiter for another one checks its state and sleeps again). An
/// injection that wakes the vCPU between the check and the sleep is not lost: the check is
/// made under the lock `vcpu_woken` takes to signal. A vCPU leaving `Blocked` without an
/// injection (its own thread unbinds or runs it) signals nothing, so another thread waiting
/// for it sees that only at its timeout; the usual waiter is the vCPU's own thread, which
/// waits after a `Halt` and runs the vCPU again once woken:
///
/// ```no_run
/// # use axvcpu_kvm::{axvcpu::{AxVCpu, AxVCpuExitReason}, KvmVCpu, wait_while_blocked};
/// # fn f(vcpu: &mut AxVCpu<KvmVCpu>) -> axvcpu_kvm::axvcpu::VCpuResult {
/// # use std::time::Duration;
/// if vcpu.run()? == AxVCpuExitReason::Halt {
///     // Another thread injects an interrupt through a `VCpuHandle` to wake it.
///     wait_while_blocked(&vcpu.handle(), Duration::from_secs(1));
/// }
/// # Ok(()) }
/// ```
pub fn wait_while_blocked<A>(handle: &VCpuHandle<A>, timeout: Duration) -> bool
where
    A: AxArchVCpu<Hal = HostedHal>,
{
    let deadline = Instant::now().checked_add(timeout);
    let mut wakes = WAKES.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        if handle.state() != VCpuState::Blocked {
            return true;
        }
        let left = match deadline {
            Some(d) => d.saturating_duration_since(Instant::now()),
            // A timeout beyond what `Instant` can hold: wait as long as it can.
            None => Duration::from_secs(u32::MAX as u64),
        };
        if left.is_zero() {
            return false;
        }
        wakes = match WOKEN.wait_timeout(wakes, left) {
            Ok((guard, _)) => guard,
            Err(poisoned) => poisoned.into_inner().0,
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_zeroed_aligned_and_counted() {
        let before = HostedHal::live_frames();
        let a = HostedHal::alloc_frame().expect("frame");
        assert_eq!(a.as_usize() % FRAME, 0);
        let c = HostedHal::alloc_contiguous_frames(4, 4).expect("frames");
        assert_eq!(c.as_usize() % (4 * FRAME), 0);
        assert!(HostedHal::live_frames() >= before + 5);
        HostedHal::dealloc_frame(a);
        HostedHal::dealloc_contiguous_frames(c, 4);
        // A double free is refused, not undefined behaviour.
        HostedHal::dealloc_frame(a);
        assert_eq!(HostedHal::phys_to_virt(a).as_usize(), a.as_usize());
    }

    #[test]
    fn cpu_ids_are_per_thread_and_recycled() {
        let here = HostedHal::current_cpu_id();
        assert_eq!(here, HostedHal::current_cpu_id());
        assert!(here < MAX_CPUS);
        let other = std::thread::spawn(HostedHal::current_cpu_id)
            .join()
            .expect("thread");
        assert_ne!(here, other);
        assert!(other < MAX_CPUS);
    }
}
