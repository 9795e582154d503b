//! Guest accesses that carry data: port and MMIO transfers reported in pieces, read
//! completion, and writes held after a fault on read-only memory.

use axvcpu::{
    AccessFlags, AxVCpuExitReason, AxVCpuHal, GuestPhysAddr, Port, VCpuError, VCpuResult,
};

use crate::exits::{width, Step, APIC_ICR_HIGH, APIC_ICR_LOW};
use crate::vm::Backing;
use crate::KvmVCpu;

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
    /// The bytes, little-endian; `len` of them count.
    data: [u8; 8],
    len: usize,
    /// Where KVM left the bytes in `kvm_run` (still there: KVM was not entered since).
    data_off: usize,
}

impl<H: AxVCpuHal> KvmVCpu<H> {
    pub(crate) fn mmio_write(
        &mut self,
        addr: u64,
        len: usize,
        data_off: usize,
    ) -> VCpuResult<Step> {
        let len = len.min(8);
        let value = self.exit_value(data_off, len)?;
        if len == 4 && (addr == APIC_ICR_LOW || addr == APIC_ICR_HIGH) {
            return Ok(self.icr_write(addr, value as u32));
        }
        let write = PendingWrite {
            addr,
            data: value.to_le_bytes(),
            len,
            data_off,
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
    /// faults again if any byte is still read-only, and reports it as MMIO writes if the
    /// memory is no longer mapped at all. A write left half on RAM and half unmapped is an
    /// error: neither KVM nor the hypervisor could complete it as one access.
    pub(crate) fn retry_write(
        &mut self,
        write: PendingWrite,
    ) -> VCpuResult<Option<AxVCpuExitReason>> {
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
        let targets = targets.get(..write.len).unwrap_or_default();
        if targets.iter().all(Option::is_none) {
            return match self.start_transfer(
                None,
                write.addr,
                true,
                write.data_off,
                write.len,
                0,
            )? {
                Step::Exit(exit) => Ok(Some(exit)),
                Step::Again => Ok(None),
            };
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
        Ok(None)
    }

    pub(crate) fn start_transfer(
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
    pub(crate) fn next_piece(&mut self) -> VCpuResult<Option<AxVCpuExitReason>> {
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
            let data = self.exit_value(t.data_off.saturating_add(t.done), size)?;
            t.done = t.done.saturating_add(size);
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
                let bytes = bytes.get(..size).ok_or(
                    VCpuError::bad_state("complete_read: read wider than 8 bytes")
                        .with_value(size as u64),
                )?;
                self.write_exit_data(t.data_off.saturating_add(t.done), bytes)?;
                t.done = t.done.saturating_add(size);
                self.transfer = (t.done < t.len).then_some(t);
                Ok(())
            }
            Some(PendingRead::Msr { data_off }) => {
                self.write_exit_data(data_off, &value.to_le_bytes())?;
                Ok(())
            }
            None => Err(VCpuError::bad_state(
                "complete_read: the last exit was not a read",
            )),
        }
    }
}
