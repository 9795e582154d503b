//! The world switch of the hosted backend: the `KVM_RUN` ioctl, and every access this crate
//! makes to a vCPU's shared `kvm_run` page (registers, pending events and exit data travel
//! through it, so an exit costs that one ioctl).
//!
//! A [`Kicker`] on another thread may store into `kvm_run.immediate_exit` at any moment, so
//! this crate never forms a Rust reference to the `kvm_run` structure: a `&mut kvm_run`
//! would assert that no one else touches any of its bytes. Each access below projects a raw
//! pointer to the one field it needs and reads or writes that field alone, and
//! `immediate_exit` is only ever accessed atomically (see `kick`). So the kicker's store
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
use std::sync::Arc;

use axvcpu::{AxErrorKind, VCpuError, VCpuResult};
use kvm_bindings::{kvm_run, KVM_SYNC_X86_EVENTS, KVM_SYNC_X86_REGS};
use kvm_ioctls::{VcpuExit, VcpuFd};

use crate::kick::{pthread_self, KickTarget, Kicker};
use crate::regs::RegFile;

/// The registers `KVM_CAP_SYNC_REGS` carries in `kvm_run`: the GPRs, rip and rflags.
const SYNC_REGS: u64 = KVM_SYNC_X86_REGS as u64;
/// ... and the pending-event state, through which interrupts are injected.
const SYNC_EVENTS: u64 = KVM_SYNC_X86_EVENTS as u64;

/// Where exit data starts in `kvm_run`: everything from here on (the exit union, the sync
/// registers, the PIO data page) lies past the bytes a kicker writes.
const EXIT_DATA_START: usize = core::mem::offset_of!(kvm_run, __bindgen_anon_1);

/// What one `KVM_RUN` returned, copied out of the `kvm_run` page. Data offsets are from the
/// start of the mapping (see [`Switch::read_exit_data`]).
#[derive(Debug, Clone, Copy)]
pub(crate) enum RawExit {
    /// Port I/O: `len` bytes in elements of `size` bytes at `data_off`.
    Io {
        out: bool,
        port: u16,
        size: usize,
        len: usize,
        data_off: usize,
    },
    /// MMIO of `len` bytes, data at `data_off`.
    Mmio {
        write: bool,
        addr: u64,
        len: usize,
        data_off: usize,
    },
    Hlt,
    IrqWindowOpen,
    Shutdown,
    SystemEvent,
    FailEntry(u64),
    /// `KVM_EXIT_INTERNAL_ERROR`, with its suberror.
    InternalError(u32),
    Rdmsr {
        index: u32,
        data_off: usize,
    },
    Wrmsr {
        index: u32,
        data: u64,
    },
    /// A kick was pending: `KVM_RUN` was not called.
    KickPending,
    /// `EINTR`: a kick (or any signal) while in `KVM_RUN`.
    Interrupted,
    /// An exit the backend does not expect, with KVM's exit reason.
    Unexpected(u32),
    /// `KVM_RUN` failed.
    Failed(kvm_ioctls::Error),
}

/// KVM's number for exits kvm-ioctls decodes but this backend does not expect.
fn exit_number(exit: &VcpuExit<'_>) -> u32 {
    use kvm_bindings::*;
    match exit {
        VcpuExit::Unknown => KVM_EXIT_UNKNOWN,
        VcpuExit::Exception => KVM_EXIT_EXCEPTION,
        VcpuExit::Hypercall(_) => KVM_EXIT_HYPERCALL,
        VcpuExit::Debug(_) => KVM_EXIT_DEBUG,
        VcpuExit::SetTpr => KVM_EXIT_SET_TPR,
        VcpuExit::TprAccess => KVM_EXIT_TPR_ACCESS,
        VcpuExit::Nmi => KVM_EXIT_NMI,
        VcpuExit::IoapicEoi(_) => KVM_EXIT_IOAPIC_EOI,
        VcpuExit::Hyperv => KVM_EXIT_HYPERV,
        VcpuExit::MemoryFault { .. } => KVM_EXIT_MEMORY_FAULT,
        // Exits of other architectures (s390, PowerPC): never seen on x86.
        _ => u32::MAX,
    }
}

/// One vCPU's `KVM_RUN`: its file descriptor, its `kvm_run` mapping and the kick state
/// shared with its [`Kicker`]s.
pub(crate) struct Switch {
    fd: VcpuFd,
    /// Address of the `kvm_run` mapping: valid while `fd` is (it unmaps the page on drop),
    /// and written by the kernel only inside `KVM_RUN`, which needs `&mut self.fd`: so with
    /// `&self` or `&mut self` in hand nothing but a kicker's `immediate_exit` store can run
    /// concurrently with an access through it.
    base: usize,
    /// The size of the mapping.
    size: usize,
    kick: Arc<KickTarget>,
    ioctls: u64,
    runs: u64,
}

impl core::fmt::Debug for Switch {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Switch")
            .field("ioctls", &self.ioctls)
            .field("runs", &self.runs)
            .finish_non_exhaustive()
    }
}

impl Drop for Switch {
    fn drop(&mut self) {
        // The kvm_run page goes away with `fd`: no kicker may write to it after this.
        self.kick.set_immediate_exit(0);
    }
}

impl Switch {
    /// Takes over a new vCPU's fd (its creation was `ioctls` ioctls) and its `kvm_run`
    /// mapping of `size` bytes, and asks KVM to sync registers and events through it.
    pub(crate) fn new(mut fd: VcpuFd, size: usize, ioctls: u64) -> Self {
        // The only reference to `kvm_run` this crate forms, before any kicker exists; from
        // here on the page is accessed through raw pointers.
        let base = (fd.get_kvm_run() as *mut kvm_run).expose_provenance();
        let kick = Arc::new(KickTarget::default());
        kick.set_immediate_exit(base + core::mem::offset_of!(kvm_run, immediate_exit));
        let this = Self {
            fd,
            base,
            size,
            kick,
            ioctls,
            runs: 0,
        };
        // SAFETY: see `base`; `kvm_valid_regs` is a plain integer.
        unsafe { addr_of_mut!((*this.page()).kvm_valid_regs).write(SYNC_REGS | SYNC_EVENTS) };
        this
    }

    fn page(&self) -> *mut kvm_run {
        std::ptr::with_exposed_provenance_mut(self.base)
    }

    /// The vCPU fd, for the ioctls of `setup`; `ioctls` counts them.
    pub(crate) fn setup_fd(&mut self, ioctls: u64) -> &VcpuFd {
        self.ioctls += ioctls;
        &self.fd
    }

    /// Counts ioctls made on this vCPU's behalf elsewhere (memory slots).
    pub(crate) fn count_ioctls(&mut self, n: u64) {
        self.ioctls += n;
    }

    pub(crate) fn ioctls(&self) -> u64 {
        self.ioctls
    }

    pub(crate) fn runs(&self) -> u64 {
        self.runs
    }

    pub(crate) fn kicker(&self) -> Kicker {
        Kicker(self.kick.clone())
    }

    /// Loads changed registers, runs `KVM_RUN` once (unless a kick is pending) and takes
    /// back the registers KVM left in the page.
    #[inline]
    pub(crate) fn run(&mut self, regs: &mut RegFile) -> RawExit {
        if let Some(changed) = regs.take_changes() {
            // SAFETY: see `base`; `s.regs` is the sync-register area (plain integers).
            unsafe { addr_of_mut!((*self.page()).s.regs.regs).write(changed) };
            self.mark_sync_dirty(SYNC_REGS);
        }
        let immediate_exit = self.base + core::mem::offset_of!(kvm_run, immediate_exit);
        if self.kick.enter(pthread_self(), immediate_exit) {
            return RawExit::KickPending;
        }
        self.ioctls += 1;
        self.runs += 1;
        let raw = Self::raw_exit(self.fd.run(), self.base);
        self.kick.leave(immediate_exit);
        if matches!(raw, RawExit::Interrupted) {
            self.kick.consume();
        }
        // SAFETY: see `base`; KVM refreshed the registers (marked valid in `new`) at this
        // exit, and `KVM_RUN` has returned.
        regs.refresh(unsafe { addr_of!((*self.page()).s.regs.regs).read() });
        // Fill in what `VcpuExit` does not carry.
        let run = self.page();
        match raw {
            RawExit::Io {
                out,
                port,
                len,
                data_off,
                ..
            } => {
                // SAFETY: see `base`; KVM fills the `io` member at a `KVM_EXIT_IO`.
                let size = unsafe { addr_of!((*run).__bindgen_anon_1.io.size).read() };
                RawExit::Io {
                    out,
                    port,
                    size: usize::from(size),
                    len,
                    data_off,
                }
            }
            RawExit::InternalError(_) => {
                // SAFETY: as above, for the `internal` member.
                let sub = unsafe { addr_of!((*run).__bindgen_anon_1.internal.suberror).read() };
                RawExit::InternalError(sub)
            }
            other => other,
        }
    }

    #[inline]
    fn raw_exit(r: Result<VcpuExit<'_>, kvm_ioctls::Error>, base: usize) -> RawExit {
        let off = |p: *const u8| p.addr().wrapping_sub(base);
        let exit = match r {
            Ok(exit) => exit,
            Err(e) if e.errno() == libc::EINTR => return RawExit::Interrupted,
            Err(e) => return RawExit::Failed(e),
        };
        let io = |out, port, data: &[u8]| RawExit::Io {
            out,
            port,
            size: 0,
            len: data.len(),
            data_off: off(data.as_ptr()),
        };
        let mmio = |write, addr, data: &[u8]| RawExit::Mmio {
            write,
            addr,
            len: data.len(),
            data_off: off(data.as_ptr()),
        };
        match exit {
            VcpuExit::IoOut(port, data) => io(true, port, data),
            VcpuExit::IoIn(port, data) => io(false, port, data),
            VcpuExit::MmioRead(addr, data) => mmio(false, addr, data),
            VcpuExit::MmioWrite(addr, data) => mmio(true, addr, data),
            VcpuExit::Hlt => RawExit::Hlt,
            VcpuExit::IrqWindowOpen => RawExit::IrqWindowOpen,
            VcpuExit::Shutdown => RawExit::Shutdown,
            VcpuExit::SystemEvent(..) => RawExit::SystemEvent,
            VcpuExit::FailEntry(reason, _) => RawExit::FailEntry(reason),
            VcpuExit::InternalError => RawExit::InternalError(0),
            VcpuExit::X86Rdmsr(m) => RawExit::Rdmsr {
                index: m.index,
                data_off: off((m.data as *mut u64).cast::<u8>()),
            },
            VcpuExit::X86Wrmsr(m) => RawExit::Wrmsr {
                index: m.index,
                data: m.data,
            },
            VcpuExit::Intr => RawExit::Interrupted,
            VcpuExit::Unsupported(reason) => RawExit::Unexpected(reason),
            other => RawExit::Unexpected(exit_number(&other)),
        }
    }

    /// Tells KVM to load these sync-register sets at the next entry.
    #[inline]
    fn mark_sync_dirty(&mut self, sets: u64) {
        let run = self.page();
        // SAFETY: see `base`.
        unsafe {
            let dirty = addr_of_mut!((*run).kvm_dirty_regs);
            dirty.write(dirty.read() | sets);
        }
    }

    /// Whether KVM said, at the last exit, that the guest can take an interrupt now.
    #[inline]
    pub(crate) fn ready_for_interrupt(&self) -> bool {
        // SAFETY: see `base`; a one-byte read of a field nobody writes concurrently.
        unsafe { addr_of!((*self.page()).ready_for_interrupt_injection).read() != 0 }
    }

    /// The interrupt KVM holds injected and the guest has not taken yet, as of the last
    /// exit (or as `inject` left it).
    #[inline]
    pub(crate) fn injected_interrupt(&self) -> Option<u8> {
        // SAFETY: see `base`; `s.regs.events` is plain integers, copied out at each exit.
        let pending = unsafe { addr_of!((*self.page()).s.regs.events.interrupt).read() };
        (pending.injected != 0).then_some(pending.nr)
    }

    /// Makes KVM inject `vector` at the next entry, through the synced vCPU events.
    #[inline]
    pub(crate) fn inject(&mut self, vector: u8) {
        let run = self.page();
        // SAFETY: see `base`; `s.regs.events` is KVM's pending-event state (plain
        // integers), copied out at the last exit.
        unsafe {
            let interrupt = addr_of_mut!((*run).s.regs.events.interrupt);
            let mut pending = interrupt.read();
            pending.injected = 1;
            pending.nr = vector;
            pending.soft = 0;
            interrupt.write(pending);
        }
        self.mark_sync_dirty(SYNC_EVENTS);
    }

    /// Makes KVM inject exception `vector` (with `error_code`) at the next entry, through
    /// the synced vCPU events. Refused while KVM holds an exception already.
    pub(crate) fn inject_exception(&mut self, vector: u8, error_code: Option<u32>) -> VCpuResult {
        let run = self.page();
        // SAFETY: see `base`; `s.regs.events` is KVM's pending-event state (plain
        // integers), copied out at the last exit.
        unsafe {
            let exception = addr_of_mut!((*run).s.regs.events.exception);
            let mut e = exception.read();
            if e.injected != 0 || e.pending != 0 {
                return Err(VCpuError::bad_state(
                    "inject_exception: KVM holds an exception for the guest already",
                ));
            }
            e.injected = 1;
            e.nr = vector;
            e.has_error_code = u8::from(error_code.is_some());
            e.error_code = error_code.unwrap_or(0);
            exception.write(e);
        }
        self.mark_sync_dirty(SYNC_EVENTS);
        Ok(())
    }

    /// Sets `kvm_run.msr.error` after an `rdmsr`/`wrmsr` exit: KVM injects #GP(0) at the
    /// next `KVM_RUN` instead of finishing the instruction.
    pub(crate) fn fail_msr(&mut self) -> VCpuResult {
        self.write_exit_data(EXIT_DATA_START, &[1])
    }

    /// Asks KVM for (or stops asking for) an exit once the guest can take an interrupt.
    #[inline]
    pub(crate) fn request_interrupt_window(&mut self, on: bool) {
        // SAFETY: see `base`; `request_interrupt_window` is its own byte, next to but not
        // overlapping `immediate_exit`.
        unsafe { addr_of_mut!((*self.page()).request_interrupt_window).write(u8::from(on)) }
    }

    /// Checks that `[off, off + len)` is exit data inside the mapping; returns its address.
    #[inline]
    fn exit_data(&self, off: usize, len: usize) -> VCpuResult<*mut u8> {
        let inside = off
            .checked_add(len)
            .is_some_and(|end| off >= EXIT_DATA_START && end <= self.size);
        if !inside {
            return Err(
                VCpuError::new(AxErrorKind::BadAddress, "KVM exit data outside kvm_run")
                    .with_value(off as u64),
            );
        }
        Ok(std::ptr::with_exposed_provenance_mut(self.base + off))
    }

    /// `len` (at most 8) bytes of exit data at `off` (I/O, MMIO or MSR data), as a
    /// little-endian value.
    #[inline]
    pub(crate) fn exit_value(&self, off: usize, len: usize) -> VCpuResult<u64> {
        let mut b = [0u8; 8];
        let buf = b.get_mut(..len).ok_or(
            VCpuError::new(AxErrorKind::BadAddress, "KVM exit data wider than 8 bytes")
                .with_value(len as u64),
        )?;
        let src = self.exit_data(off, buf.len())?;
        // SAFETY: `src..src + buf.len()` is inside the mapping and past `immediate_exit`
        // (checked), see `base`; `buf` is ordinary memory, so they cannot overlap.
        unsafe { std::ptr::copy_nonoverlapping(src, buf.as_mut_ptr(), buf.len()) };
        Ok(u64::from_le_bytes(b))
    }

    /// Copies `bytes` into exit data at `off`, where KVM picks up a read's value.
    #[inline]
    pub(crate) fn write_exit_data(&mut self, off: usize, bytes: &[u8]) -> VCpuResult {
        let dst = self.exit_data(off, bytes.len())?;
        // SAFETY: as in `exit_value`.
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), dst, bytes.len()) };
        Ok(())
    }
}
