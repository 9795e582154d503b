//! Exit decoding: what `KVM_RUN` returned → an [`AxVCpuExitReason`] (`Nothing` for an exit
//! handled inside, which the core enters again after) or an `Err`. Accesses that carry data
//! are reported in pieces the hypervisor can express, reads wait for `complete_read`, and a
//! write to read-only memory is held until the mapping allows it.

use axvcpu::{
    AccessFlags, AccessWidth, AxVCpuExitReason as E, GuestPhysAddr, Port, SysRegAddr, VCpuError,
    VCpuResult, X86_HYPERCALL_PORT, X86_SHUTDOWN_PORT,
};

use axvcpu_x86::apic::IcrDecoder;

use crate::errno::kvm_error;
use crate::regs::{gpr, RegFile};
use crate::switch::{RawExit, Switch};
use crate::vm::{Backing, KvmVm};

/// A port or MMIO access KVM handed over whole, reported to the hypervisor in pieces of a
/// width it can express: one element at a time for string I/O (`rep ins/outs`), natural
/// widths for an MMIO fragment whose length is not 1, 2, 4 or 8.
#[derive(Debug, Clone, Copy)]
struct Transfer {
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
enum PendingRead {
    /// The next `size` bytes of the current transfer.
    Transfer { size: usize },
    /// `kvm_run.msr.data`.
    Msr { data_off: usize },
}

/// A guest write to read-only memory, held until the mapping allows it.
#[derive(Debug, Clone, Copy)]
struct HeldWrite {
    addr: u64,
    /// The bytes, little-endian; `len` of them count.
    data: [u8; 8],
    len: usize,
    /// Where KVM left the bytes in `kvm_run` (still there: KVM was not entered since).
    data_off: usize,
}

/// What the exits of one vCPU leave behind for the next `run()` or `complete_read`.
#[derive(Debug, Default)]
pub(crate) struct Exits {
    transfer: Option<Transfer>,
    read: Option<PendingRead>,
    held_write: Option<HeldWrite>,
    /// The local APIC's ICR, which the guest writes through the (unmapped) xAPIC page.
    icr: IcrDecoder,
    /// KVM finishes the last exit's instruction at the next `KVM_RUN` (a read, `wrmsr`, an
    /// access reported in pieces): `rip` still points at it and must not move before.
    unfinished: bool,
    /// The last exit was an `rdmsr`/`wrmsr` KVM finishes at the next `KVM_RUN`.
    msr: bool,
}

impl Exits {
    /// Refuses to move `rip` while KVM has an instruction to finish: it would finish it at
    /// the new `rip` (completing an MMIO read even writes its own `rip` back).
    #[inline]
    pub(crate) fn check_pc_move(&self) -> VCpuResult {
        if self.unfinished {
            return Err(VCpuError::bad_state(
                "set_pc: KVM finishes the instruction of the last read (or wrmsr) exit at the next run(); pc cannot move before",
            ));
        }
        Ok(())
    }

    /// The exit `run()` reports without entering the guest: the next piece of a transfer,
    /// or the outcome of retrying a held write (`Nothing` once it is stored).
    #[inline]
    pub(crate) fn resume(&mut self, switch: &Switch, vm: &KvmVm) -> VCpuResult<Option<E>> {
        if self.read.is_some() {
            return Err(VCpuError::bad_state(
                "run: the last read exit has not been completed",
            ));
        }
        if let Some(exit) = self.next_piece(switch)? {
            return Ok(Some(exit));
        }
        match self.held_write.take() {
            Some(write) => self.retry_write(write, switch, vm).map(Some),
            None => Ok(None),
        }
    }

    #[inline]
    pub(crate) fn decode(
        &mut self,
        raw: RawExit,
        regs: &RegFile,
        switch: &Switch,
        vm: &KvmVm,
    ) -> VCpuResult<E> {
        if !matches!(raw, RawExit::KickPending) {
            // KVM_RUN ran: it finished the instruction of the last exit.
            self.unfinished = false;
            self.msr = false;
        }
        Ok(match raw {
            RawExit::Io {
                out: true,
                port: X86_HYPERCALL_PORT,
                size: 4,
                len: 4,
                ..
            } => {
                let (nr, args) = regs.hypercall();
                E::Hypercall { nr, args }
            }
            RawExit::Io {
                out: true,
                port: X86_SHUTDOWN_PORT,
                ..
            } => E::SystemDown,
            RawExit::Io {
                out,
                port,
                size,
                len,
                data_off,
            } => return self.start_transfer(Some(port), 0, out, data_off, len, size, switch),
            RawExit::Mmio {
                write: true,
                addr,
                len,
                data_off,
            } => return self.mmio_write(addr, len, data_off, switch, vm),
            RawExit::Mmio {
                write: false,
                addr,
                len,
                data_off,
            } => return self.start_transfer(None, addr, false, data_off, len, 0, switch),
            RawExit::Hlt => E::Halt,
            RawExit::IrqWindowOpen => E::Nothing,
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
                self.unfinished = true;
                self.msr = true;
                E::SysRegRead {
                    addr: SysRegAddr(index as usize),
                    reg: gpr::RAX,
                }
            }
            RawExit::Wrmsr { index, data } => {
                self.unfinished = true;
                self.msr = true;
                E::SysRegWrite {
                    addr: SysRegAddr(index as usize),
                    value: data,
                }
            }
            RawExit::KickPending | RawExit::Interrupted => E::Kicked,
            RawExit::Unexpected(reason) => {
                return Err(VCpuError::unsupported("unexpected KVM exit reason")
                    .with_value(u64::from(reason)))
            }
            RawExit::Failed(e) => return Err(kvm_error("KVM_RUN failed", e)),
        })
    }

    #[inline]
    fn mmio_write(
        &mut self,
        addr: u64,
        len: usize,
        data_off: usize,
        switch: &Switch,
        vm: &KvmVm,
    ) -> VCpuResult<E> {
        let len = len.min(8);
        let value = switch.exit_value(data_off, len)?;
        if let Ok(width) = AccessWidth::try_from(len) {
            if let Some(exit) = self.icr.mmio_write(addr, width, value) {
                return Ok(exit);
            }
        }
        let write = HeldWrite {
            addr,
            data: value.to_le_bytes(),
            len,
            data_off,
        };
        if let Some(exit) = read_only_fault(&write, vm) {
            self.held_write = Some(write);
            return Ok(exit);
        }
        self.start_transfer(None, addr, true, data_off, len, 0, switch)
    }

    /// Retries a write that hit read-only memory, as hardware would after the hypervisor
    /// fixed the mapping: stores it into host memory if every byte is now writable RAM
    /// (`Nothing`: the guest goes on), faults again if any byte is still read-only, and
    /// reports it as MMIO writes if the memory is no longer mapped at all. A write left half
    /// on RAM and half unmapped is an error: neither KVM nor the hypervisor could complete
    /// it as one access.
    fn retry_write(&mut self, write: HeldWrite, switch: &Switch, vm: &KvmVm) -> VCpuResult<E> {
        if let Some(exit) = read_only_fault(&write, vm) {
            self.held_write = Some(write);
            return Ok(exit);
        }
        let mut targets = [None; 8];
        for (i, t) in targets.iter_mut().enumerate().take(write.len) {
            if let Backing::Ram { hva, .. } = vm.backing(write.addr.wrapping_add(i as u64)) {
                *t = Some(hva);
            }
        }
        let targets = targets.get(..write.len).unwrap_or_default();
        if targets.iter().all(Option::is_none) {
            let (addr, off, len) = (write.addr, write.data_off, write.len);
            return self.start_transfer(None, addr, true, off, len, 0, switch);
        }
        if !targets.iter().all(Option::is_some) {
            return Err(VCpuError::unsupported(
                "a write held after a nested page fault now spans RAM and unmapped memory",
            )
            .with_value(write.addr));
        }
        for (hva, byte) in targets.iter().flatten().zip(write.data) {
            // SAFETY: `hva` lies in a memory slot of this VM: host memory the nested page
            // table maps writable, which `set_ept_root`'s contract keeps allocated while the
            // slot exists. The guest may access it concurrently, as it may any RAM; a
            // volatile byte store is what the retried guest store does.
            unsafe {
                std::ptr::write_volatile(
                    std::ptr::with_exposed_provenance_mut::<u8>(*hva as usize),
                    byte,
                )
            };
        }
        Ok(E::Nothing)
    }

    #[allow(clippy::too_many_arguments)]
    #[inline]
    fn start_transfer(
        &mut self,
        port: Option<u16>,
        addr: u64,
        write: bool,
        data_off: usize,
        len: usize,
        unit: usize,
        switch: &Switch,
    ) -> VCpuResult<E> {
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
        // KVM has done a write by the time it reports it; it finishes a read (once given
        // the value) and string I/O (its emulator writes `rip`, `rsi`/`rdi` and `rcx`
        // back) at the next entry.
        self.unfinished = !write || (port.is_some() && len > unit);
        Ok(self.next_piece(switch)?.unwrap_or(E::Nothing))
    }

    /// The next piece of the current transfer, if any is left.
    #[inline]
    fn next_piece(&mut self, switch: &Switch) -> VCpuResult<Option<E>> {
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
        let width = AccessWidth::try_from(size)?;
        let addr = GuestPhysAddr::from(t.addr.wrapping_add(t.done as u64) as usize);
        let exit = if t.write {
            let data = switch.exit_value(t.data_off.saturating_add(t.done), size)?;
            t.done = t.done.saturating_add(size);
            match t.port {
                Some(port) => E::IoWrite {
                    port: Port(port),
                    width,
                    data,
                },
                None => E::MmioWrite { addr, width, data },
            }
        } else {
            self.read = Some(PendingRead::Transfer { size });
            match t.port {
                Some(port) => E::IoRead {
                    port: Port(port),
                    width,
                },
                None => E::MmioRead {
                    addr,
                    width,
                    reg: None,
                    reg_width: width,
                    signed_ext: false,
                },
            }
        };
        self.transfer = (t.done < t.len || !t.write).then_some(t);
        Ok(Some(exit))
    }

    /// `inject_exception`: #GP(0) for the `rdmsr`/`wrmsr` of the last exit is KVM's own
    /// (`kvm_run.msr.error`: KVM injects it at the next `KVM_RUN`, instead of finishing the
    /// instruction); any exception when no instruction is left to finish goes through the
    /// synced vCPU events. Refused while KVM has another exit's instruction to finish (a
    /// port or MMIO read: KVM's emulator completes it at the next `KVM_RUN`, there is no
    /// way to make it fault instead).
    pub(crate) fn inject_exception(
        &mut self,
        vector: u8,
        error_code: Option<u32>,
        switch: &mut Switch,
    ) -> VCpuResult {
        if vector >= 32 || vector == 2 {
            return Err(VCpuError::invalid_input(
                "inject_exception: x86 exceptions are vectors 0..32 other than NMI (2)",
            )
            .with_value(u64::from(vector)));
        }
        if self.msr && vector == 13 && error_code == Some(0) {
            switch.fail_msr()?;
            self.read = None;
            self.msr = false;
            return Ok(());
        }
        if self.unfinished {
            return Err(VCpuError::unsupported(
                "inject_exception: KVM finishes the last exit's instruction at the next run (only #GP(0) can replace an rdmsr/wrmsr)",
            ));
        }
        switch.inject_exception(vector, error_code)
    }

    /// Puts `value` where the pending read's instruction expects it; KVM finishes the
    /// instruction at the next `KVM_RUN`.
    #[inline]
    pub(crate) fn complete_read(&mut self, value: u64, switch: &mut Switch) -> VCpuResult {
        match self.read.take() {
            Some(PendingRead::Transfer { size }) => {
                let Some(mut t) = self.transfer else {
                    return Err(VCpuError::bad_state(
                        "complete_read: no transfer in progress",
                    ));
                };
                let bytes = value.to_le_bytes();
                let bytes = bytes.get(..size).ok_or(
                    VCpuError::bad_state("complete_read: read wider than 8 bytes")
                        .with_value(size as u64),
                )?;
                switch.write_exit_data(t.data_off.saturating_add(t.done), bytes)?;
                t.done = t.done.saturating_add(size);
                self.transfer = (t.done < t.len).then_some(t);
                Ok(())
            }
            Some(PendingRead::Msr { data_off }) => {
                switch.write_exit_data(data_off, &value.to_le_bytes())
            }
            None => Err(VCpuError::bad_state(
                "complete_read: the last exit was not a read",
            )),
        }
    }
}

/// The fault a write to read-only memory takes, if `write` touches any.
fn read_only_fault(write: &HeldWrite, vm: &KvmVm) -> Option<E> {
    (0..write.len as u64)
        .any(|i| {
            matches!(
                vm.backing(write.addr.wrapping_add(i)),
                Backing::Ram { readonly: true, .. }
            )
        })
        .then_some(E::NestedPageFault {
            addr: GuestPhysAddr::from(write.addr as usize),
            access_flags: AccessFlags::WRITE,
        })
}
