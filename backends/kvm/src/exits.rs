//! KVM exits → [`AxVCpuExitReason`]s: decoding, split accesses, the APIC ICR, read-only
//! memory faults, and read completion.

use axvcpu::{
    AccessFlags, AccessWidth, AxErrorKind, AxVCpuExitReason, AxVCpuHal, GuestPhysAddr, Port,
    SysRegAddr, VCpuError, VCpuResult, X86_HYPERCALL_PORT, X86_SHUTDOWN_PORT,
};
use kvm_bindings::{kvm_run, KVM_EXIT_IO_OUT};
use kvm_ioctls::VcpuExit;

use crate::vm::{kvm_error, Backing};
use crate::KvmVCpu;

/// Local APIC interrupt command register, low and high halves (xAPIC MMIO at the default
/// base 0xFEE0_0000).
pub const APIC_ICR_LOW: u64 = 0xfee0_0300;
/// See [`APIC_ICR_LOW`].
pub const APIC_ICR_HIGH: u64 = 0xfee0_0310;

/// What one `KVM_RUN` returned, copied out of the `kvm_run` page.
#[derive(Debug, Clone, Copy)]
pub(crate) enum RawExit {
    /// Port I/O: `count` elements of `size` bytes at `data_off` in the `kvm_run` mapping.
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
    InternalError(u32),
    Rdmsr {
        index: u32,
        data_off: usize,
    },
    Wrmsr {
        index: u32,
        data: u64,
    },
    /// `EINTR`: a kick (or any signal).
    Interrupted,
    /// An exit the backend does not expect, with KVM's exit reason.
    Unexpected(u32),
    /// `KVM_RUN` failed.
    Failed(kvm_ioctls::Error),
}

fn offset_in(run_base: usize, ptr: *const u8) -> usize {
    ptr.addr().wrapping_sub(run_base)
}

impl RawExit {
    pub(crate) fn from_run(r: Result<VcpuExit<'_>, kvm_ioctls::Error>, run_base: usize) -> Self {
        let exit = match r {
            Ok(exit) => exit,
            Err(e) if e.errno() == libc::EINTR => return Self::Interrupted,
            Err(e) => return Self::Failed(e),
        };
        match exit {
            VcpuExit::IoOut(port, data) => {
                Self::io(true, port, data.as_ptr(), data.len(), run_base)
            }
            VcpuExit::IoIn(port, data) => {
                Self::io(false, port, data.as_ptr(), data.len(), run_base)
            }
            VcpuExit::MmioRead(addr, data) => Self::Mmio {
                write: false,
                addr,
                len: data.len(),
                data_off: offset_in(run_base, data.as_ptr()),
            },
            VcpuExit::MmioWrite(addr, data) => Self::Mmio {
                write: true,
                addr,
                len: data.len(),
                data_off: offset_in(run_base, data.as_ptr()),
            },
            VcpuExit::Hlt => Self::Hlt,
            VcpuExit::IrqWindowOpen => Self::IrqWindowOpen,
            VcpuExit::Shutdown => Self::Shutdown,
            VcpuExit::SystemEvent(..) => Self::SystemEvent,
            VcpuExit::FailEntry(reason, _) => Self::FailEntry(reason),
            VcpuExit::InternalError => Self::InternalError(0),
            VcpuExit::X86Rdmsr(m) => Self::Rdmsr {
                index: m.index,
                data_off: offset_in(run_base, (m.data as *mut u64).cast::<u8>()),
            },
            VcpuExit::X86Wrmsr(m) => Self::Wrmsr {
                index: m.index,
                data: m.data,
            },
            VcpuExit::Intr => Self::Interrupted,
            VcpuExit::Unsupported(reason) => Self::Unexpected(reason),
            other => Self::Unexpected(exit_number(&other)),
        }
    }

    fn io(out: bool, port: u16, data: *const u8, len: usize, run_base: usize) -> Self {
        Self::Io {
            out,
            port,
            // Completed from the kvm_run page by `refine` (the element size is not in
            // `VcpuExit`).
            size: 0,
            len,
            data_off: offset_in(run_base, data),
        }
    }
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
        _ => u32::MAX,
    }
}

/// A port or MMIO access KVM handed over whole, reported to the hypervisor in pieces of a
/// width it can express: one element at a time for string I/O (`rep ins/outs`), natural
/// widths for an MMIO fragment whose length is not 1, 2, 4 or 8.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Transfer {
    port: Option<u16>,
    addr: u64,
    write: bool,
    /// Data buffer in the `kvm_run` mapping.
    data_off: usize,
    len: usize,
    /// Bytes per element (I/O); 0 for MMIO.
    unit: usize,
    /// Bytes reported (writes) or completed (reads) so far.
    done: usize,
}

/// A read exit waiting for `complete_read`: where the value goes in the `kvm_run` mapping.
#[derive(Debug, Clone, Copy)]
pub(crate) enum PendingRead {
    /// The next `size` bytes of the current transfer.
    Transfer { size: usize },
    /// `kvm_run.msr.data`.
    Msr { data_off: usize },
}

/// A guest write to read-only memory, held until the mapping allows it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PendingWrite {
    addr: u64,
    data: [u8; 8],
    len: usize,
}

enum Step {
    Exit(AxVCpuExitReason),
    Again,
}

fn width(size: usize) -> VCpuResult<AccessWidth> {
    AccessWidth::try_from(size)
}

fn le_bytes(bytes: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    let n = bytes.len().min(8);
    b[..n].copy_from_slice(&bytes[..n]);
    u64::from_le_bytes(b)
}

impl<H: AxVCpuHal> KvmVCpu<H> {
    /// `len` bytes at `off` in this vCPU's `kvm_run` mapping: I/O and MMIO data and
    /// `msr.data`, which start after the fields other threads touch.
    fn run_bytes(&mut self, off: usize, len: usize) -> VCpuResult<&mut [u8]> {
        let first = core::mem::offset_of!(kvm_run, __bindgen_anon_1);
        let end = off.saturating_add(len);
        if off < first || end > self.vm.run_size() {
            return Err(
                VCpuError::new(AxErrorKind::BadAddress, "KVM exit data outside kvm_run")
                    .with_value(off as u64),
            );
        }
        // SAFETY: `[off, off + len)` lies inside this vCPU's `kvm_run` mapping, which lives
        // as long as `self.fd`; it starts past the bytes a kicker writes (`immediate_exit`),
        // and only this thread (holding `&mut self`, outside `KVM_RUN`) accesses it.
        Ok(unsafe {
            core::slice::from_raw_parts_mut(
                std::ptr::with_exposed_provenance_mut::<u8>(self.run_base + off),
                len,
            )
        })
    }

    /// Runs until an exit the hypervisor must see.
    pub(crate) fn run_until_exit(&mut self) -> VCpuResult<AxVCpuExitReason> {
        if self.read.is_some() {
            return Err(VCpuError::bad_state(
                "run: the last read exit has not been completed",
            ));
        }
        if let Some(exit) = self.next_piece()? {
            return Ok(exit);
        }
        if let Some(write) = self.npf_write.take() {
            if let Some(exit) = self.retry_write(write)? {
                return Ok(exit);
            }
        }
        loop {
            let raw = self.kvm_run_once();
            let raw = self.refine(raw);
            match self.decode(raw)? {
                Step::Exit(exit) => return Ok(exit),
                Step::Again => continue,
            }
        }
    }

    /// Fills in what `VcpuExit` does not carry (I/O element size, internal error code).
    fn refine(&mut self, raw: RawExit) -> RawExit {
        match raw {
            RawExit::Io {
                out,
                port,
                len,
                data_off,
                ..
            } => {
                // SAFETY: the exit reason is KVM_EXIT_IO, for which KVM fills the `io` member.
                let io = unsafe { self.kvm_run().__bindgen_anon_1.io };
                debug_assert_eq!(out, u32::from(io.direction) == KVM_EXIT_IO_OUT);
                RawExit::Io {
                    out,
                    port,
                    size: usize::from(io.size),
                    len,
                    data_off,
                }
            }
            RawExit::InternalError(_) => {
                // SAFETY: the exit reason is KVM_EXIT_INTERNAL_ERROR, for which KVM fills the
                // `internal` member.
                let suberror = unsafe { self.kvm_run().__bindgen_anon_1.internal.suberror };
                RawExit::InternalError(suberror)
            }
            other => other,
        }
    }

    fn decode(&mut self, raw: RawExit) -> VCpuResult<Step> {
        use AxVCpuExitReason as E;
        Ok(Step::Exit(match raw {
            RawExit::Io {
                out: true,
                port,
                size,
                len,
                data_off,
            } => {
                if port == X86_HYPERCALL_PORT && size == 4 && len == 4 {
                    let (nr, args) = crate::regs::hypercall(&self.regs);
                    E::Hypercall { nr, args }
                } else if port == X86_SHUTDOWN_PORT {
                    E::SystemDown
                } else {
                    return self.start_transfer(Some(port), 0, true, data_off, len, size);
                }
            }
            RawExit::Io {
                out: false,
                port,
                size,
                len,
                data_off,
            } => return self.start_transfer(Some(port), 0, false, data_off, len, size),
            RawExit::Mmio {
                write: true,
                addr,
                len,
                data_off,
            } => return self.mmio_write(addr, len, data_off),
            RawExit::Mmio {
                write: false,
                addr,
                len,
                data_off,
            } => return self.start_transfer(None, addr, false, data_off, len, 0),
            RawExit::Hlt => E::Halt,
            RawExit::IrqWindowOpen => return Ok(Step::Again),
            RawExit::Shutdown | RawExit::SystemEvent => E::SystemDown,
            RawExit::FailEntry(reason) => E::FailEntry {
                hardware_entry_failure_reason: reason,
            },
            RawExit::InternalError(suberror) => {
                return Err(VCpuError::unsupported(
                    "KVM_EXIT_INTERNAL_ERROR: KVM could not emulate or run the guest instruction",
                )
                .with_value(u64::from(suberror)))
            }
            RawExit::Rdmsr { index, data_off } => {
                self.read = Some(PendingRead::Msr { data_off });
                E::SysRegRead {
                    addr: SysRegAddr(index as usize),
                    reg: crate::regs::gpr::RAX,
                }
            }
            RawExit::Wrmsr { index, data } => E::SysRegWrite {
                addr: SysRegAddr(index as usize),
                value: data,
            },
            RawExit::Interrupted => E::Kicked,
            RawExit::Unexpected(reason) => {
                return Err(VCpuError::unsupported("unexpected KVM exit reason")
                    .with_value(u64::from(reason)))
            }
            RawExit::Failed(e) => return Err(kvm_error("KVM_RUN failed", e)),
        }))
    }

    fn mmio_write(&mut self, addr: u64, len: usize, data_off: usize) -> VCpuResult<Step> {
        let bytes = self.run_bytes(data_off, len.min(8))?;
        let mut data = [0u8; 8];
        data[..bytes.len()].copy_from_slice(bytes);
        if len == 4 && (addr == APIC_ICR_LOW || addr == APIC_ICR_HIGH) {
            return Ok(self.icr_write(addr, le_bytes(&data) as u32));
        }
        let write = PendingWrite {
            addr,
            data,
            len: len.min(8),
        };
        if let Some(exit) = self.read_only_fault(&write) {
            self.npf_write = Some(write);
            return Ok(Step::Exit(exit));
        }
        self.start_transfer(None, addr, true, data_off, len, 0)
    }

    /// The fault a write to read-only memory takes, if `write` touches any.
    fn read_only_fault(&self, write: &PendingWrite) -> Option<AxVCpuExitReason> {
        (0..write.len as u64)
            .any(|i| {
                matches!(
                    self.vm.backing(write.addr.wrapping_add(i)),
                    Backing::Ram { readonly: true, .. }
                )
            })
            .then_some(AxVCpuExitReason::NestedPageFault {
                addr: GuestPhysAddr::from(write.addr as usize),
                access_flags: AccessFlags::WRITE,
            })
    }

    /// Retries a write that hit read-only memory, as hardware would after the hypervisor
    /// fixed the mapping: stores it into host memory if every byte is now writable RAM,
    /// faults again if any byte is still read-only, and reports an MMIO write if the memory
    /// is no longer mapped.
    fn retry_write(&mut self, write: PendingWrite) -> VCpuResult<Option<AxVCpuExitReason>> {
        if let Some(exit) = self.read_only_fault(&write) {
            self.npf_write = Some(write);
            return Ok(Some(exit));
        }
        let mut targets = [None; 8];
        for (i, t) in targets.iter_mut().enumerate().take(write.len) {
            if let Backing::Ram { hva, .. } = self.vm.backing(write.addr.wrapping_add(i as u64)) {
                *t = Some(hva);
            }
        }
        if targets[..write.len].iter().all(Option::is_some) {
            for (t, byte) in targets.iter().zip(write.data).take(write.len) {
                if let Some(hva) = t {
                    // SAFETY: `hva` lies in a memory slot of this VM: host memory the nested
                    // page table maps writable, which `set_ept_root`'s contract keeps
                    // allocated while the slot exists. The guest may access it concurrently,
                    // as it may any RAM; a volatile byte store is what a retried guest store
                    // does.
                    unsafe {
                        std::ptr::write_volatile(
                            std::ptr::with_exposed_provenance_mut::<u8>(*hva as usize),
                            byte,
                        )
                    };
                }
            }
            return Ok(None);
        }
        let w = width(write.len).map_err(|_| {
            VCpuError::unsupported("a retried write spans RAM and unmapped memory")
                .with_value(write.addr)
        })?;
        Ok(Some(AxVCpuExitReason::MmioWrite {
            addr: GuestPhysAddr::from(write.addr as usize),
            width: w,
            data: le_bytes(&write.data[..write.len]),
        }))
    }

    fn icr_write(&mut self, addr: u64, value: u32) -> Step {
        if addr == APIC_ICR_HIGH {
            self.icr.high = value;
            return Step::Again;
        }
        let dest = self.icr.high >> 24;
        let vector = value & 0xff;
        let mode = (value >> 8) & 7;
        let level_assert = value & (1 << 14) != 0;
        let shorthand = (value >> 18) & 3;
        match mode {
            // INIT (the de-assert form is a legacy no-op).
            5 => {
                if level_assert && shorthand == 0 && !self.icr.init_sent.contains(&dest) {
                    self.icr.init_sent.push(dest);
                }
                Step::Again
            }
            // Start-up: the first SIPI after INIT starts the CPU; later ones are ignored.
            6 => match self.icr.init_sent.iter().position(|&d| d == dest) {
                Some(i) if shorthand == 0 => {
                    self.icr.init_sent.swap_remove(i);
                    Step::Exit(AxVCpuExitReason::CpuUp {
                        target_cpu: u64::from(dest),
                        entry_point: GuestPhysAddr::from((vector as usize) << 12),
                        arg: 0,
                    })
                }
                _ => Step::Again,
            },
            // Fixed, lowest priority, NMI.
            0 | 1 | 4 => Step::Exit(AxVCpuExitReason::SendIPI {
                target_cpu: u64::from(dest),
                target_cpu_aux: 0,
                send_to_all: shorthand >= 2,
                send_to_self: shorthand == 1 || shorthand == 2,
                vector: u64::from(vector),
            }),
            _ => Step::Again,
        }
    }

    fn start_transfer(
        &mut self,
        port: Option<u16>,
        addr: u64,
        write: bool,
        data_off: usize,
        len: usize,
        unit: usize,
    ) -> VCpuResult<Step> {
        if len == 0 || (port.is_some() && (unit == 0 || len % unit != 0)) {
            return Err(VCpuError::unsupported("malformed KVM I/O exit").with_value(len as u64));
        }
        self.transfer = Some(Transfer {
            port,
            addr,
            write,
            data_off,
            len,
            unit,
            done: 0,
        });
        match self.next_piece()? {
            Some(exit) => Ok(Step::Exit(exit)),
            None => Ok(Step::Again),
        }
    }

    /// The next piece of the current transfer, if any is left.
    fn next_piece(&mut self) -> VCpuResult<Option<AxVCpuExitReason>> {
        let Some(mut t) = self.transfer else {
            return Ok(None);
        };
        if t.done >= t.len {
            self.transfer = None;
            return Ok(None);
        }
        let left = t.len - t.done;
        let size = match t.port {
            Some(_) => t.unit,
            None => [8, 4, 2, 1].into_iter().find(|&s| s <= left).unwrap_or(1),
        };
        let w = width(size)?;
        let addr = GuestPhysAddr::from(t.addr.wrapping_add(t.done as u64) as usize);
        let exit = if t.write {
            let data = le_bytes(self.run_bytes(t.data_off + t.done, size)?);
            t.done += size;
            match t.port {
                Some(port) => AxVCpuExitReason::IoWrite {
                    port: Port(port),
                    width: w,
                    data,
                },
                None => AxVCpuExitReason::MmioWrite {
                    addr,
                    width: w,
                    data,
                },
            }
        } else {
            self.read = Some(PendingRead::Transfer { size });
            match t.port {
                Some(port) => AxVCpuExitReason::IoRead {
                    port: Port(port),
                    width: w,
                },
                None => AxVCpuExitReason::MmioRead {
                    addr,
                    width: w,
                    reg: None,
                    reg_width: w,
                    signed_ext: false,
                },
            }
        };
        self.transfer = (t.done < t.len || !t.write).then_some(t);
        Ok(Some(exit))
    }

    /// Puts `value` where the pending read's instruction expects it.
    pub(crate) fn finish_read(&mut self, value: u64) -> VCpuResult {
        match self.read.take() {
            Some(PendingRead::Transfer { size }) => {
                let Some(mut t) = self.transfer else {
                    return Err(VCpuError::bad_state(
                        "complete_read: no transfer in progress",
                    ));
                };
                let bytes = value.to_le_bytes();
                let off = t.data_off + t.done;
                self.run_bytes(off, size)?.copy_from_slice(&bytes[..size]);
                t.done += size;
                self.transfer = (t.done < t.len).then_some(t);
                Ok(())
            }
            Some(PendingRead::Msr { data_off }) => {
                self.run_bytes(data_off, 8)?
                    .copy_from_slice(&value.to_le_bytes());
                Ok(())
            }
            None => Err(VCpuError::bad_state(
                "complete_read: the last exit was not a read",
            )),
        }
    }
}
