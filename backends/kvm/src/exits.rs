//! KVM exits → [`AxVCpuExitReason`]s: decoding what `KVM_RUN` returned, and the local
//! APIC's interrupt command register (see `access` for port, MMIO and MSR data).

use axvcpu::{
    AccessWidth, AxErrorKind, AxVCpuExitReason, AxVCpuHal, GuestPhysAddr, SysRegAddr, VCpuError,
    VCpuResult, X86_HYPERCALL_PORT, X86_SHUTDOWN_PORT,
};
use kvm_ioctls::VcpuExit;

use crate::access::PendingRead;
use crate::vm::kvm_error;
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
        VcpuExit::MemoryFault { .. } => KVM_EXIT_MEMORY_FAULT,
        // Exits of other architectures (s390, PowerPC): never seen on x86.
        _ => u32::MAX,
    }
}

pub(crate) enum Step {
    Exit(AxVCpuExitReason),
    Again,
}

pub(crate) fn width(size: usize) -> VCpuResult<AccessWidth> {
    AccessWidth::try_from(size)
}

impl<H: AxVCpuHal> KvmVCpu<H> {
    /// `len` (at most 8) bytes of exit data at `off`, as a little-endian value.
    pub(crate) fn exit_value(&self, off: usize, len: usize) -> VCpuResult<u64> {
        let mut b = [0u8; 8];
        let buf = b.get_mut(..len).ok_or(
            VCpuError::new(AxErrorKind::BadAddress, "KVM exit data wider than 8 bytes")
                .with_value(len as u64),
        )?;
        self.read_exit_data(off, buf)?;
        Ok(u64::from_le_bytes(b))
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
            } => RawExit::Io {
                out,
                port,
                size: usize::from(self.io_element_size()),
                len,
                data_off,
            },
            RawExit::InternalError(_) => RawExit::InternalError(self.internal_error_suberror()),
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

    pub(crate) fn icr_write(&mut self, addr: u64, value: u32) -> Step {
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
            // Fixed, lowest priority, NMI. An NMI ignores the ICR's vector field: it is
            // reported as vector 2, the NMI's own.
            0 | 1 | 4 => Step::Exit(AxVCpuExitReason::SendIPI {
                target_cpu: u64::from(dest),
                target_cpu_aux: 0,
                send_to_all: shorthand >= 2,
                send_to_self: shorthand == 1 || shorthand == 2,
                vector: if mode == 4 { 2 } else { u64::from(vector) },
            }),
            _ => Step::Again,
        }
    }
}
