//! One `KVM_RUN`, and every access this crate makes to a vCPU's `kvm_run` mapping.
//!
//! A [`Kicker`](crate::Kicker) on another thread may store into `kvm_run.immediate_exit` at
//! any moment, so this crate never forms a Rust reference to the `kvm_run` structure: a
//! `&mut kvm_run` would assert that no one else touches any of its bytes. Each access below
//! projects a raw pointer to the one field it needs and reads or writes that field alone,
//! and `immediate_exit` is only ever accessed atomically (see `kick`). So the kicker's store
//! neither races with nor aliases anything this crate does.
//!
//! The one `&mut kvm_run` that remains is kvm-ioctls' own, inside `VcpuFd::run`, which it
//! forms after `KVM_RUN` returns to decode the exit (we copy what we need out of the decoded
//! exit at once). kvm-ioctls never reads or writes `immediate_exit` through it, and Rust's
//! aliasing rules (Stacked and Tree Borrows) track each byte separately, so a store to a
//! byte that reference never accesses does not invalidate its uses of the others. Removing
//! even that reference needs `KVM_SET_SIGNAL_MASK` (then no one but the vCPU thread writes
//! `kvm_run`), which kvm-ioctls does not wrap.

use std::ptr::{addr_of, addr_of_mut};

use axvcpu::{AxErrorKind, AxVCpuHal, VCpuError, VCpuResult};
use kvm_bindings::{kvm_regs, kvm_run, KVM_SYNC_X86_EVENTS, KVM_SYNC_X86_REGS};

use crate::exits::RawExit;
use crate::{regs, KvmVCpu};

/// The registers `KVM_CAP_SYNC_REGS` carries in `kvm_run`: the GPRs, rip and rflags.
pub(crate) const SYNC_REGS: u64 = KVM_SYNC_X86_REGS as u64;
/// ... and the pending-event state, through which interrupts are injected.
pub(crate) const SYNC_EVENTS: u64 = KVM_SYNC_X86_EVENTS as u64;

/// Where exit data starts in `kvm_run`: everything from here on (the exit union, the sync
/// registers, the PIO data page) lies past the bytes a kicker writes.
const EXIT_DATA_START: usize = core::mem::offset_of!(kvm_run, __bindgen_anon_1);

impl<H: AxVCpuHal> KvmVCpu<H> {
    /// This vCPU's `kvm_run` mapping. Valid while `self.fd` is (it unmaps the page on drop),
    /// and written by the kernel only inside `KVM_RUN`, which needs `&mut self.fd`: so with
    /// `&self` or `&mut self` in hand nothing but a kicker's `immediate_exit` store can run
    /// concurrently with an access through it.
    fn run_page(&self) -> *mut kvm_run {
        std::ptr::with_exposed_provenance_mut(self.run_base)
    }

    /// Whether KVM said, at the last exit, that the guest can take an interrupt now.
    fn ready_for_interrupt_injection(&self) -> bool {
        // SAFETY: see `run_page`; a one-byte read of a field nobody writes concurrently.
        unsafe { addr_of!((*self.run_page()).ready_for_interrupt_injection).read() != 0 }
    }

    /// Asks KVM for (or stops asking for) an exit once the guest can take an interrupt.
    fn request_interrupt_window(&mut self, on: bool) {
        // SAFETY: see `run_page`; `request_interrupt_window` is its own byte, next to but
        // not overlapping `immediate_exit`.
        unsafe { addr_of_mut!((*self.run_page()).request_interrupt_window).write(u8::from(on)) }
    }

    /// Tells KVM which sync-register sets to copy out at each exit (`SYNC_*` bits).
    pub(crate) fn set_sync_valid(&mut self, sets: u64) {
        // SAFETY: see `run_page`.
        unsafe { addr_of_mut!((*self.run_page()).kvm_valid_regs).write(sets) }
    }

    /// Tells KVM to load these sync-register sets at the next entry (`SYNC_*` bits).
    fn mark_sync_dirty(&mut self, sets: u64) {
        let run = self.run_page();
        // SAFETY: see `run_page`.
        unsafe {
            let dirty = addr_of_mut!((*run).kvm_dirty_regs);
            dirty.write(dirty.read() | sets);
        }
    }

    /// The element size of a `KVM_EXIT_IO` (kvm-ioctls' `VcpuExit` does not carry it).
    pub(crate) fn io_element_size(&self) -> u8 {
        // SAFETY: see `run_page`. Callers ask only after a `KVM_EXIT_IO`, for which KVM
        // fills this member; reading a plain-integer field of a union is defined anyway.
        unsafe { addr_of!((*self.run_page()).__bindgen_anon_1.io.size).read() }
    }

    /// The suberror of a `KVM_EXIT_INTERNAL_ERROR`.
    pub(crate) fn internal_error_suberror(&self) -> u32 {
        // SAFETY: as in `io_exit`, for the `internal` member.
        unsafe { addr_of!((*self.run_page()).__bindgen_anon_1.internal.suberror).read() }
    }

    /// Checks that `[off, off + len)` is exit data inside the mapping; returns its address.
    fn exit_data(&self, off: usize, len: usize) -> VCpuResult<*mut u8> {
        let inside = off
            .checked_add(len)
            .is_some_and(|end| off >= EXIT_DATA_START && end <= self.vm.run_size());
        if !inside {
            return Err(
                VCpuError::new(AxErrorKind::BadAddress, "KVM exit data outside kvm_run")
                    .with_value(off as u64),
            );
        }
        Ok(std::ptr::with_exposed_provenance_mut(self.run_base + off))
    }

    /// Copies `buf.len()` bytes of exit data at `off` (I/O or MMIO data) into `buf`.
    pub(crate) fn read_exit_data(&self, off: usize, buf: &mut [u8]) -> VCpuResult {
        let src = self.exit_data(off, buf.len())?;
        // SAFETY: `src..src + buf.len()` is inside the mapping and past `immediate_exit`
        // (checked), see `run_page`; `buf` is ordinary memory, so they cannot overlap.
        unsafe { std::ptr::copy_nonoverlapping(src, buf.as_mut_ptr(), buf.len()) };
        Ok(())
    }

    /// Copies `bytes` into exit data at `off`, where KVM picks up a read's value.
    pub(crate) fn write_exit_data(&mut self, off: usize, bytes: &[u8]) -> VCpuResult {
        let dst = self.exit_data(off, bytes.len())?;
        // SAFETY: as in `read_exit_data`.
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), dst, bytes.len()) };
        Ok(())
    }

    /// Pushes changed registers into the `kvm_run` page; KVM loads them at the next entry.
    fn flush_regs(&mut self) {
        if self.regs_dirty {
            // SAFETY: see `run_page`; `s.regs` is the sync-register area (plain integers).
            unsafe { addr_of_mut!((*self.run_page()).s.regs.regs).write(self.regs) };
            self.mark_sync_dirty(SYNC_REGS);
            self.regs_dirty = false;
        }
    }

    /// Runs `KVM_RUN` once and records what the guest left in the `kvm_run` page.
    pub(crate) fn kvm_run_once(&mut self) -> RawExit {
        self.prepare_injection();
        self.flush_regs();
        let immediate_exit = self.run_base + core::mem::offset_of!(kvm_run, immediate_exit);
        if self.kick.enter(crate::kick::pthread_self(), immediate_exit) {
            return RawExit::Interrupted;
        }
        self.ioctls += 1;
        self.runs += 1;
        let raw = RawExit::from_run(self.fd.run(), self.run_base);
        self.kick.leave(immediate_exit);
        if matches!(raw, RawExit::Interrupted) {
            self.kick.consume();
        }
        let run = self.run_page();
        // SAFETY: see `run_page`; KVM refreshed both sets (marked valid in `setup`) at this
        // exit, and `KVM_RUN` has returned.
        let (regs, injected): (kvm_regs, u8) = unsafe {
            (
                addr_of!((*run).s.regs.regs).read(),
                addr_of!((*run).s.regs.events.interrupt.injected).read(),
            )
        };
        self.regs = regs;
        self.irq_in_flight = injected != 0;
        self.irq_ready = self.ready_for_interrupt_injection();
        raw
    }

    /// Injects the oldest held interrupt if the guest can take it now, and asks KVM for an
    /// interrupt-window exit while any remains.
    fn prepare_injection(&mut self) {
        if self.irqs.is_empty() {
            self.request_interrupt_window(false);
            return;
        }
        let can_take =
            self.irq_ready && !self.irq_in_flight && self.regs.rflags & regs::RFLAGS_IF != 0;
        if can_take {
            if let Some(vector) = self.irqs.pop_front() {
                let run = self.run_page();
                // SAFETY: see `run_page`; `s.regs.events` is KVM's pending-event state
                // (plain integers), copied out at the last exit.
                unsafe {
                    let interrupt = addr_of_mut!((*run).s.regs.events.interrupt);
                    let mut pending = interrupt.read();
                    pending.injected = 1;
                    pending.nr = vector;
                    pending.soft = 0;
                    interrupt.write(pending);
                }
                self.mark_sync_dirty(SYNC_EVENTS);
                self.irq_in_flight = true;
                self.irq_ready = false;
            }
        }
        let more = !self.irqs.is_empty();
        self.request_interrupt_window(more);
    }
}
