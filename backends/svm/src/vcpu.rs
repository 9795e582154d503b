//! [`SvmVCpu`]: one guest CPU in 64-bit long mode under AMD SVM with nested paging.

use alloc::sync::Arc;
use alloc::vec;
use core::marker::PhantomData;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};

use axvcpu::{
    AccessFlags, AccessWidth, AxArchVCpu, AxErrorKind, AxVCpuExitReason, AxVCpuHal, GuestPhysAddr,
    HostPhysAddr, Port, SysRegAddr, VCpuError, VCpuKick, VCpuResult, X86_SHUTDOWN_PORT,
};
use axvcpu_npt::{MapFlags, NestedPageTable, NptView, X86Npt};

use crate::boot::{
    long_mode_tables_size, write_long_mode_tables, LongModeBoot, CODE_SELECTOR, DATA_SELECTOR,
};
use crate::decode::{self, MmioInsn, RegOperand, MAX_INSN_LEN};
use crate::hw;
use crate::switch::{self, Gprs};
use crate::vmcb::{ctrl, event, exit, icpt3, icpt4, int_ctl, save};

/// The vector of the kick IPI. The host must give it an IDT handler that sends EOI to its
/// local APIC (the backend lets the host take interrupts right after every #VMEXIT).
pub const KICK_VECTOR: u8 = 0xf2;

/// The guest-physical page of the local APIC the guest programs (xAPIC default base).
pub const APIC_BASE_GPA: u64 = 0xfee0_0000;
const APIC_ICR_LOW: u64 = 0x300;
const APIC_ICR_HIGH: u64 = 0x310;

const RFLAGS_IF: u64 = 1 << 9;
const NO_CPU: usize = usize::MAX;

/// Where a vCPU's long-mode boot structures (GDT, page tables) come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GuestBoot {
    /// The hypervisor wrote them (see
    /// [`write_long_mode_tables`](crate::boot::write_long_mode_tables)).
    Tables(LongModeBoot),
    /// `setup` writes them itself at this 4 KiB-aligned guest-physical address (they take
    /// [`long_mode_tables_size`](crate::boot::long_mode_tables_size) bytes, 28 KiB below
    /// 4 GiB), through the nested page table, which must map that range. Every vCPU's
    /// `setup` writes the same bytes again.
    WriteTablesAt(u64),
}

impl Default for GuestBoot {
    fn default() -> Self {
        Self::Tables(LongModeBoot::default())
    }
}

/// [`SvmVCpu::setup`](AxArchVCpu::setup)'s configuration: how the vCPU starts.
///
/// Every vCPU starts in 64-bit long mode at its entry (a secondary started through
/// [`CpuUp`](AxVCpuExitReason::CpuUp) too, unlike hardware, which starts it in real mode):
/// CS = [`CODE_SELECTOR`] (64-bit), the other segments [`DATA_SELECTOR`], paging through
/// the boot tables' CR3, `EFER` = LME | LMA | SVME, interrupts disabled (RFLAGS = 2),
/// `rsp` = `stack_top - vcpu_id * stack_stride`, every other GPR 0, and no IDT (limit 0):
/// the guest installs its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SvmSetupConfig {
    /// The GDT and page tables.
    pub boot: GuestBoot,
    /// The initial `rsp` of vCPU 0.
    pub stack_top: u64,
    /// How far below the previous vCPU's each vCPU's stack starts.
    pub stack_stride: u64,
}

#[derive(Debug)]
struct KickState {
    flag: AtomicBool,
    /// The APIC id of the CPU the vCPU is bound to, or [`NO_CPU`].
    cpu: AtomicUsize,
}

/// Kicks an [`SvmVCpu`]: sets its flag and sends IPI [`KICK_VECTOR`] to the CPU it is bound
/// to. `run` checks the flag with GIF = 0 just before `vmrun`; an IPI that arrives after the
/// check is held by GIF and makes the guest exit (INTR intercept) as soon as it runs.
pub struct SvmKicker<H: AxVCpuHal> {
    state: Arc<KickState>,
    _hal: PhantomData<fn() -> H>,
}

impl<H: AxVCpuHal> core::fmt::Debug for SvmKicker<H> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SvmKicker")
            .field("state", &self.state)
            .finish()
    }
}

impl<H: AxVCpuHal> VCpuKick for SvmKicker<H> {
    fn kick(&self) {
        self.state.flag.store(true, Ordering::SeqCst);
        let cpu = self.state.cpu.load(Ordering::SeqCst);
        if cpu != NO_CPU {
            hw::send_ipi::<H>(cpu as u32, KICK_VECTOR);
        }
    }
}

/// A read exit waiting for `complete_read`.
#[derive(Debug, Clone, Copy)]
enum PendingRead {
    Mmio {
        dst: RegOperand,
        dst_width: AccessWidth,
        width: AccessWidth,
        signed: bool,
        len: u64,
    },
    Io {
        width: AccessWidth,
        len: u64,
    },
    Msr,
}

/// The VMCB through the host's mapping of its frame.
#[derive(Debug, Clone, Copy)]
struct Vmcb(usize);

impl Vmcb {
    fn r64(self, off: usize) -> u64 {
        // SAFETY: `self.0` maps the vCPU's own 4 KiB VMCB frame and `off` is a field
        // offset below 4 KiB; no guest runs while the host touches it.
        unsafe { ((self.0 + off) as *const u64).read_volatile() }
    }
    fn w64(self, off: usize, v: u64) {
        // SAFETY: as in `r64`.
        unsafe { ((self.0 + off) as *mut u64).write_volatile(v) }
    }
    fn r32(self, off: usize) -> u32 {
        // SAFETY: as in `r64`.
        unsafe { ((self.0 + off) as *const u32).read_volatile() }
    }
    fn w32(self, off: usize, v: u32) {
        // SAFETY: as in `r64`.
        unsafe { ((self.0 + off) as *mut u32).write_volatile(v) }
    }
    fn w16(self, off: usize, v: u16) {
        // SAFETY: as in `r64`.
        unsafe { ((self.0 + off) as *mut u16).write_volatile(v) }
    }
    fn w8(self, off: usize, v: u8) {
        // SAFETY: as in `r64`.
        unsafe { ((self.0 + off) as *mut u8).write_volatile(v) }
    }
    fn seg(self, off: usize, selector: u16, attrib: u16, limit: u32, base: u64) {
        self.w16(off, selector);
        self.w16(off + 2, attrib);
        self.w32(off + 4, limit);
        self.w64(off + 8, base);
    }
}

static NEXT_ASID: AtomicU32 = AtomicU32::new(0);

/// Frames a vCPU owns: VMCB, host state area (`vmsave`), I/O and MSR permission maps.
#[derive(Debug, Clone, Copy)]
struct Frames {
    vmcb: HostPhysAddr,
    host_area: HostPhysAddr,
    iopm: HostPhysAddr,
    msrpm: HostPhysAddr,
}

/// An x86-64 vCPU under AMD SVM: the guest runs in long mode, translated by the nested
/// page table given to `set_ept_root` (`NestedPageTable<H, X86Npt>`, `N_CR3` = its root).
///
/// **Intercepts.** VMMCALL, HLT, every port (I/O permission map all ones), every MSR (MSR
/// permission map all ones: the guest cannot reach a host MSR), shutdown, INTR and NMI
/// (host interrupts), VINTR while an interrupt waits for a window, the SVM instructions,
/// INVD, WBINVD, MONITOR/MWAIT, XSETBV, INVLPGA and task switches (these end `run` with an
/// `Err` carrying the exit code).
///
/// **Interrupts.** `inject_interrupt(vector)` takes vectors 32..=255. A held vector is
/// injected through `EVENTINJ` when the guest has `RFLAGS.IF` set and no interrupt shadow;
/// otherwise the backend sets `V_IRQ` with the VINTR intercept and injects at the window's
/// exit. An event whose delivery was cut short by an exit (`EXITINTINFO`) is re-injected
/// as is, so each vector is delivered exactly once.
///
/// **Kicks and host interrupts.** `V_INTR_MASKING` = 1 and the host enters with
/// `RFLAGS.IF` = 1 under GIF = 0, so any host interrupt makes the guest exit. At an INTR
/// exit the backend reads the local APIC's IRR (before the host takes anything), then sets
/// GIF and lets the host take pending interrupts through its own IDT (the kick vector's
/// handler only sends EOI), then disables them again. An INTR or NMI exit returns
/// [`Kicked`](AxVCpuExitReason::Kicked) when the kick flag is set; otherwise an INTR exit
/// whose pending vector was [`KICK_VECTOR`] (the late IPI of a kick already consumed before
/// an entry) re-enters the guest, one for another vector returns
/// [`ExternalInterrupt`](AxVCpuExitReason::ExternalInterrupt) with the highest vector that
/// was pending (already handled by the host's IDT when `run` returns), and an NMI exit
/// returns `ExternalInterrupt { vector: 2 }`. The HAL's `current_cpu_id` must be the local
/// APIC id.
///
/// **State.** `vmrun` moves the VMCB's guest state (segments, control registers, `rip`,
/// `rsp`, `rax`, `EFER`, ...); `vmload`/`vmsave` around it swap FS/GS/TR/LDTR bases,
/// `KernelGSBase`, `STAR`/`LSTAR`/`CSTAR`/`SFMASK` and `SYSENTER_*` with the host's; the
/// world switch moves the other 14 GPRs. Not switched: x87/SSE/AVX state and `XCR0` (the
/// `x86_64-unknown-none` host uses no floating point; guests on one CPU share it), debug
/// registers `DR0..3`.
pub struct SvmVCpu<H: AxVCpuHal> {
    frames: Frames,
    gprs: Gprs,
    vm_id: usize,
    vcpu_id: usize,
    entry: GuestPhysAddr,
    ept_root: HostPhysAddr,
    asid: u32,
    kick: Arc<KickState>,
    pending_read: Option<PendingRead>,
    irqs: [u64; 4],
    reinject: Option<u64>,
    icr_high: u32,
    init_sent: [u64; 4],
    flush_tlb: bool,
    host_irq: Option<HostIrq>,
    _hal: PhantomData<fn() -> H>,
}

impl<H: AxVCpuHal> core::fmt::Debug for SvmVCpu<H> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SvmVCpu")
            .field("vm_id", &self.vm_id)
            .field("vcpu_id", &self.vcpu_id)
            .field("asid", &self.asid)
            .field("frames", &self.frames)
            .field("gprs", &self.gprs)
            .field("pending_read", &self.pending_read)
            .finish()
    }
}

fn no_memory(what: &'static str) -> VCpuError {
    VCpuError::new(AxErrorKind::NoMemory, what)
}

fn free_frames<H: AxVCpuHal>(f: &Frames) {
    H::dealloc_frame(f.vmcb);
    H::dealloc_frame(f.host_area);
    H::dealloc_contiguous_frames(f.iopm, crate::vmcb::IOPM_FRAMES);
    H::dealloc_contiguous_frames(f.msrpm, crate::vmcb::MSRPM_FRAMES);
}

fn alloc_frames<H: AxVCpuHal>() -> VCpuResult<Frames> {
    let vmcb = H::alloc_frame().ok_or(no_memory("no frame for the VMCB"))?;
    let Some(host_area) = H::alloc_frame() else {
        H::dealloc_frame(vmcb);
        return Err(no_memory("no frame for the host state area"));
    };
    let Some(iopm) = H::alloc_contiguous_frames(crate::vmcb::IOPM_FRAMES, 1) else {
        H::dealloc_frame(vmcb);
        H::dealloc_frame(host_area);
        return Err(no_memory("no frames for the I/O permission map"));
    };
    let Some(msrpm) = H::alloc_contiguous_frames(crate::vmcb::MSRPM_FRAMES, 1) else {
        H::dealloc_frame(vmcb);
        H::dealloc_frame(host_area);
        H::dealloc_contiguous_frames(iopm, crate::vmcb::IOPM_FRAMES);
        return Err(no_memory("no frames for the MSR permission map"));
    };
    Ok(Frames {
        vmcb,
        host_area,
        iopm,
        msrpm,
    })
}

fn fill<H: AxVCpuHal>(pa: HostPhysAddr, frames: usize, byte: u8) {
    let va = H::phys_to_virt(pa).as_usize() as *mut u8;
    // SAFETY: `frames` frames the vCPU just allocated, reached through the HAL's mapping.
    unsafe { core::ptr::write_bytes(va, byte, frames * 4096) };
}

/// The host interrupt pending at an INTR exit, read from the local APIC's IRR before the
/// host takes it.
#[derive(Debug, Clone, Copy)]
enum HostIrq {
    /// The kick vector (a kick, or a late IPI of a kick already consumed).
    StaleKick,
    /// Another vector.
    Other(u8),
}

/// What handling one #VMEXIT gives.
enum Handled {
    /// Return this exit.
    Exit(AxVCpuExitReason),
    /// Handled inside; enter the guest again.
    Again,
}

use Handled::{Again, Exit};

impl<H: AxVCpuHal> SvmVCpu<H> {
    fn vmcb(&self) -> Vmcb {
        Vmcb(H::phys_to_virt(self.frames.vmcb).as_usize())
    }

    fn reg(&self, r: usize) -> u64 {
        match r {
            0 => self.vmcb().r64(save::RAX),
            4 => self.vmcb().r64(save::RSP),
            _ => self.gprs.0.get(r).copied().unwrap_or(0),
        }
    }

    fn set_reg(&mut self, r: usize, v: u64) {
        match r {
            0 => self.vmcb().w64(save::RAX, v),
            4 => self.vmcb().w64(save::RSP, v),
            _ => {
                if let Some(slot) = self.gprs.0.get_mut(r) {
                    *slot = v;
                }
            }
        }
    }

    /// Moves `rip` past an instruction of `len` bytes and drops the interrupt shadow.
    fn advance(&mut self, len: u64) {
        let v = self.vmcb();
        v.w64(save::RIP, v.r64(save::RIP).wrapping_add(len));
        v.w64(ctrl::INT_STATE, v.r64(ctrl::INT_STATE) & !1);
    }

    fn npt(&self) -> Option<NptView<H, X86Npt>> {
        // SAFETY: `set_ept_root`'s contract keeps the table alive, in frames of `H`, for
        // the vCPU's life; `run` is never concurrent with the hypervisor changing it.
        unsafe { NestedPageTable::<H, X86Npt>::from_root(self.ept_root) }.ok()
    }

    /// Reads guest-physical `gpa` (8 bytes, 8-aligned) through the nested page table.
    fn read_gpa_u64(&self, npt: &NptView<H, X86Npt>, gpa: u64) -> Option<u64> {
        if gpa % 8 != 0 {
            return None;
        }
        let (hpa, _, _) = npt.query(GuestPhysAddr::from(gpa as usize))?;
        let va = H::phys_to_virt(hpa).as_usize() as *const u64;
        // SAFETY: the table maps `gpa` to this host frame, which stays allocated for the
        // vCPU's life (set_ept_root's contract); 8-aligned, inside one frame.
        Some(unsafe { va.read_volatile() })
    }

    fn read_gpa_u8(&self, npt: &NptView<H, X86Npt>, gpa: u64) -> Option<u8> {
        let (hpa, _, _) = npt.query(GuestPhysAddr::from(gpa as usize))?;
        let va = H::phys_to_virt(hpa).as_usize() as *const u8;
        // SAFETY: as in `read_gpa_u64`.
        Some(unsafe { va.read_volatile() })
    }

    /// The guest-physical address of guest-linear `la`, by the guest's own page tables
    /// (none with paging off; 4-level long-mode paging otherwise).
    fn linear_to_gpa(&self, npt: &NptView<H, X86Npt>, la: u64) -> Option<u64> {
        let v = self.vmcb();
        if v.r64(save::CR0) & (1 << 31) == 0 {
            return Some(la);
        }
        if v.r64(save::EFER) & (1 << 10) == 0 || v.r64(save::CR4) & (1 << 12) != 0 {
            // Legacy paging or 5-level paging: not walked.
            return None;
        }
        const ADDR: u64 = 0x000f_ffff_ffff_f000;
        let mut table = v.r64(save::CR3) & ADDR;
        for shift in [39u32, 30, 21, 12] {
            let entry = self.read_gpa_u64(npt, table + ((la >> shift) & 511) * 8)?;
            if entry & 1 == 0 {
                return None;
            }
            if shift != 12 && shift != 39 && entry & 0x80 != 0 {
                let size = 1u64 << shift;
                return Some((entry & ADDR & !(size - 1)) | (la & (size - 1)));
            }
            table = entry & ADDR;
        }
        Some(table | (la & 0xfff))
    }

    /// Fetches up to 15 instruction bytes at the guest's `rip`; returns how many it could.
    fn fetch(&self, buf: &mut [u8; MAX_INSN_LEN]) -> usize {
        let Some(npt) = self.npt() else { return 0 };
        let rip = self.vmcb().r64(save::RIP);
        let mut page_gpa = None;
        for (i, slot) in buf.iter_mut().enumerate() {
            let la = rip.wrapping_add(i as u64);
            if i == 0 || la & 0xfff == 0 {
                page_gpa = self.linear_to_gpa(&npt, la & !0xfff);
            }
            let Some(page) = page_gpa else { return i };
            match self.read_gpa_u8(&npt, page | (la & 0xfff)) {
                Some(b) => *slot = b,
                None => return i,
            }
        }
        MAX_INSN_LEN
    }

    fn pending_any(&self) -> bool {
        self.irqs.iter().any(|&w| w != 0)
    }

    fn take_highest_irq(&mut self) -> Option<u8> {
        for i in (0..4).rev() {
            let w = self.irqs[i];
            if w != 0 {
                let bit = 63 - w.leading_zeros() as usize;
                self.irqs[i] &= !(1 << bit);
                return Some((i * 64 + bit) as u8);
            }
        }
        None
    }

    /// Sets `EVENTINJ`, `V_IRQ` and the VINTR intercept for the next entry.
    fn prepare_injection(&mut self) {
        let v = self.vmcb();
        v.w64(ctrl::EVENTINJ, 0);
        v.w64(
            ctrl::INT_CTL,
            v.r64(ctrl::INT_CTL) & !(int_ctl::V_IRQ | int_ctl::V_IGN_TPR),
        );
        v.w32(ctrl::INTERCEPT_3, v.r32(ctrl::INTERCEPT_3) & !icpt3::VINTR);
        if let Some(ev) = self.reinject.take() {
            v.w64(ctrl::EVENTINJ, ev);
            return;
        }
        if !self.pending_any() {
            return;
        }
        let open = v.r64(save::RFLAGS) & RFLAGS_IF != 0 && v.r64(ctrl::INT_STATE) & 1 == 0;
        if open {
            if let Some(vector) = self.take_highest_irq() {
                v.w64(ctrl::EVENTINJ, u64::from(vector) | event::VALID);
            }
        } else {
            v.w64(
                ctrl::INT_CTL,
                v.r64(ctrl::INT_CTL) | int_ctl::V_IRQ | int_ctl::V_IGN_TPR,
            );
            v.w32(ctrl::INTERCEPT_3, v.r32(ctrl::INTERCEPT_3) | icpt3::VINTR);
        }
    }

    fn handle_exit(&mut self) -> VCpuResult<Handled> {
        let v = self.vmcb();
        let code = v.r64(ctrl::EXITCODE);
        if code as u32 == exit::INVALID {
            return Ok(Exit(AxVCpuExitReason::FailEntry {
                hardware_entry_failure_reason: code,
            }));
        }
        Ok(match code {
            exit::INTR | exit::NMI => {
                let host_irq = self.host_irq.take();
                if self.kick.flag.swap(false, Ordering::AcqRel) {
                    Exit(AxVCpuExitReason::Kicked)
                } else if code == exit::NMI {
                    Exit(AxVCpuExitReason::ExternalInterrupt { vector: 2 })
                } else {
                    match host_irq {
                        // Another host interrupt, already handled by the host's IDT.
                        Some(HostIrq::Other(vector)) => Exit(AxVCpuExitReason::ExternalInterrupt {
                            vector: u64::from(vector),
                        }),
                        // A kick IPI whose kick an earlier entry already consumed, or
                        // nothing pending any more: enter again.
                        Some(HostIrq::StaleKick) | None => Again,
                    }
                }
            }
            exit::VINTR => Again,
            exit::VMMCALL => {
                self.advance(3);
                let g = &self.gprs.0;
                Exit(AxVCpuExitReason::Hypercall {
                    nr: v.r64(save::RAX),
                    args: [g[7], g[6], g[2], g[1], g[8], g[9]],
                })
            }
            exit::HLT => {
                self.advance(1);
                Exit(AxVCpuExitReason::Halt)
            }
            exit::SHUTDOWN => Exit(AxVCpuExitReason::SystemDown),
            exit::IOIO => self.io_exit()?,
            exit::MSR => self.msr_exit()?,
            exit::NPF => self.npf_exit()?,
            _ => {
                return Err(
                    VCpuError::unsupported("SVM exit the backend does not handle").with_value(code),
                )
            }
        })
    }

    fn io_exit(&mut self) -> VCpuResult<Handled> {
        let v = self.vmcb();
        let info = v.r64(ctrl::EXITINFO1);
        if info & 0b1100 != 0 {
            return Err(
                VCpuError::unsupported("string or rep port I/O (ins/outs)").with_value(info)
            );
        }
        let width = match (info >> 4) & 7 {
            1 => AccessWidth::Byte,
            2 => AccessWidth::Word,
            4 => AccessWidth::Dword,
            _ => return Err(VCpuError::unsupported("bad IOIO size").with_value(info)),
        };
        let port = Port((info >> 16) as u16);
        let rip = v.r64(save::RIP);
        let next = v.r64(ctrl::EXITINFO2);
        let len = match next.wrapping_sub(rip) {
            l @ 1..=15 => l,
            _ => {
                let mut buf = [0u8; MAX_INSN_LEN];
                let n = self.fetch(&mut buf);
                decode::io_insn_len(&buf[..n]).ok_or(
                    VCpuError::unsupported("cannot find the length of the in/out instruction")
                        .with_value(rip),
                )? as u64
            }
        };
        if info & 1 != 0 {
            self.pending_read = Some(PendingRead::Io { width, len });
            return Ok(Exit(AxVCpuExitReason::IoRead { port, width }));
        }
        let data = v.r64(save::RAX) & width.mask();
        self.advance(len);
        if port.0 == X86_SHUTDOWN_PORT {
            return Ok(Exit(AxVCpuExitReason::SystemDown));
        }
        Ok(Exit(AxVCpuExitReason::IoWrite { port, width, data }))
    }

    fn msr_exit(&mut self) -> VCpuResult<Handled> {
        let v = self.vmcb();
        let msr = self.gprs.0[1] as u32;
        let addr = SysRegAddr(msr as usize);
        if v.r64(ctrl::EXITINFO1) & 1 == 0 {
            self.pending_read = Some(PendingRead::Msr);
            return Ok(Exit(AxVCpuExitReason::SysRegRead { addr, reg: 0 }));
        }
        let value = (self.gprs.0[2] << 32) | (v.r64(save::RAX) & 0xffff_ffff);
        self.advance(2);
        Ok(Exit(AxVCpuExitReason::SysRegWrite { addr, value }))
    }

    fn npf_exit(&mut self) -> VCpuResult<Handled> {
        let v = self.vmcb();
        let err = v.r64(ctrl::EXITINFO1);
        let gpa = v.r64(ctrl::EXITINFO2);
        let addr = GuestPhysAddr::from(gpa as usize);
        let write = err & 2 != 0;
        let fetch = err & 0x10 != 0;
        let mut flags = if fetch {
            AccessFlags::EXECUTE
        } else {
            AccessFlags::READ
        };
        if write {
            flags = AccessFlags::WRITE;
        }
        let walk = err & (1 << 33) != 0;
        if err & 1 != 0 || fetch || walk {
            // A mapped page without the permission, an instruction fetch from unmapped
            // memory, or the guest's own page walk reaching unmapped memory.
            return Ok(Exit(AxVCpuExitReason::NestedPageFault {
                addr,
                access_flags: flags,
            }));
        }
        let mut buf = [0u8; MAX_INSN_LEN];
        let n = self.fetch(&mut buf);
        let first = u64::from_le_bytes([
            buf[0], buf[1], buf[2], buf[3], buf[4], buf[5], buf[6], buf[7],
        ]);
        let d = decode::decode(&buf[..n]).map_err(|_| {
            VCpuError::unsupported(
                "MMIO by an instruction the backend does not decode (value: its first bytes)",
            )
            .with_value(first)
        })?;
        let len = d.len as u64;
        let (width, data) = match d.insn {
            MmioInsn::Load {
                width,
                dst,
                dst_width,
                signed,
            } => {
                self.pending_read = Some(PendingRead::Mmio {
                    dst,
                    dst_width,
                    width,
                    signed,
                    len,
                });
                return Ok(Exit(AxVCpuExitReason::MmioRead {
                    addr,
                    width,
                    reg: Some(dst.reg),
                    reg_width: dst_width,
                    signed_ext: signed,
                }));
            }
            MmioInsn::StoreReg { width, src } => {
                (width, decode::reg_value(self.reg(src.reg), src, width))
            }
            MmioInsn::StoreImm { width, imm } => (width, imm & width.mask()),
        };
        self.advance(len);
        if gpa & !0xfff == APIC_BASE_GPA && width == AccessWidth::Dword {
            match gpa & 0xfff {
                APIC_ICR_HIGH => {
                    self.icr_high = data as u32;
                    return Ok(Again);
                }
                APIC_ICR_LOW => return Ok(self.icr_write(data as u32)),
                _ => {}
            }
        }
        Ok(Exit(AxVCpuExitReason::MmioWrite { addr, width, data }))
    }

    /// A write of the ICR's low half: INIT then SIPI starts a CPU, fixed/lowest-priority/NMI
    /// IPIs go to the hypervisor, other modes are absorbed.
    fn icr_write(&mut self, value: u32) -> Handled {
        let dest = (self.icr_high >> 24) as usize;
        let vector = value & 0xff;
        let mode = (value >> 8) & 7;
        let assert = value & (1 << 14) != 0;
        let shorthand = (value >> 18) & 3;
        let (word, bit) = (dest / 64, dest % 64);
        match mode {
            5 => {
                if assert && shorthand == 0 {
                    self.init_sent[word] |= 1 << bit;
                }
                Again
            }
            6 if shorthand == 0 && self.init_sent[word] & (1 << bit) != 0 => {
                self.init_sent[word] &= !(1 << bit);
                Exit(AxVCpuExitReason::CpuUp {
                    target_cpu: dest as u64,
                    entry_point: GuestPhysAddr::from((vector as usize) << 12),
                    arg: 0,
                })
            }
            0 | 1 | 4 => Exit(AxVCpuExitReason::SendIPI {
                target_cpu: dest as u64,
                target_cpu_aux: 0,
                send_to_all: shorthand >= 2,
                send_to_self: shorthand == 1 || shorthand == 2,
                vector: if mode == 4 { 2 } else { u64::from(vector) },
            }),
            _ => Again,
        }
    }

    /// Writes the long-mode boot tables into guest memory at `at`, through the NPT.
    fn write_boot_tables(&self, at: u64) -> VCpuResult<LongModeBoot> {
        let size = long_mode_tables_size(at.saturating_add(1 << 20));
        let mut image = vec![0u8; size];
        let boot = write_long_mode_tables(&mut image, at, at)?;
        let npt = self
            .npt()
            .ok_or(VCpuError::invalid_input("the NPT root is not a table"))?;
        for (i, page) in image.chunks(4096).enumerate() {
            let gpa = at + (i as u64) * 4096;
            let (hpa, flags, _) = npt.query(GuestPhysAddr::from(gpa as usize)).ok_or(
                VCpuError::invalid_input("the boot tables' address is not mapped").with_value(gpa),
            )?;
            if !flags.contains(MapFlags::WRITE) {
                return Err(
                    VCpuError::invalid_input("the boot tables' page is read-only").with_value(gpa),
                );
            }
            let dst = H::phys_to_virt(hpa).as_usize() as *mut u8;
            // SAFETY: the NPT maps this guest page to `hpa`, a host frame that stays
            // allocated for the vCPU's life (set_ept_root's contract); `at` is 4 KiB
            // aligned, so the page fills the frame from its start.
            unsafe { core::ptr::copy_nonoverlapping(page.as_ptr(), dst, page.len()) };
        }
        Ok(boot)
    }

    /// One entry into the guest and back. `None`: kicked before entry.
    fn enter(&mut self) -> bool {
        let flags = switch::save_flags_cli();
        // SAFETY: `bind` ran on this CPU, where the hypervisor enabled SVM (AxPerCpu).
        unsafe { switch::clgi() };
        if self.kick.flag.swap(false, Ordering::AcqRel) {
            // SAFETY: as above.
            unsafe { switch::stgi() };
            switch::restore_flags(flags);
            return false;
        }
        self.prepare_injection();
        let v = self.vmcb();
        v.w8(
            ctrl::TLB_CONTROL,
            if self.flush_tlb {
                crate::vmcb::TLB_FLUSH_ALL
            } else {
                0
            },
        );
        v.w32(ctrl::CLEAN, 0);
        self.flush_tlb = false;
        // SAFETY: the VMCB, host area and permission maps are this vCPU's frames, set up
        // by `setup`; SVM is enabled on this CPU; GIF = 0 holds host interrupts until the
        // guest runs (with IF = 1 so they make it exit), and after #VMEXIT until `stgi`,
        // where the host's IDT takes them.
        unsafe {
            core::arch::asm!("sti", options(nomem, nostack));
            switch::axvcpu_svm_vmrun(
                &mut self.gprs,
                self.frames.vmcb.as_usize() as u64,
                self.frames.host_area.as_usize() as u64,
            );
        }
        // Before the host takes its interrupts: which one made the guest exit.
        self.host_irq = None;
        if v.r64(ctrl::EXITCODE) == exit::INTR {
            let irr = hw::apic_irr::<H>();
            self.host_irq = if hw::has_vector(&irr, KICK_VECTOR) {
                Some(HostIrq::StaleKick)
            } else {
                hw::highest_vector(&irr).map(HostIrq::Other)
            };
        }
        // SAFETY: as above; with GIF set and IF = 1 the host's IDT takes what is pending.
        unsafe {
            switch::stgi();
            core::arch::asm!("nop", "cli", options(nomem, nostack));
        }
        switch::restore_flags(flags);
        let info = v.r64(ctrl::EXITINTINFO);
        if info & event::VALID != 0 {
            // Re-deliver the event the exit interrupted, with its error code.
            let mut ev = info & 0xffff_ffff;
            if info & event::EV != 0 {
                ev |= info & 0xffff_ffff_0000_0000;
            }
            self.reinject = Some(ev);
        }
        true
    }
}

fn check_vector(vector: usize) -> VCpuResult {
    if (32..256).contains(&vector) {
        Ok(())
    } else {
        Err(
            VCpuError::invalid_input("x86 injects external interrupt vectors 32..=255")
                .with_value(vector as u64),
        )
    }
}

impl<H: AxVCpuHal> AxArchVCpu for SvmVCpu<H> {
    type CreateConfig = ();
    type SetupConfig = SvmSetupConfig;
    type Hal = H;
    type Kicker = SvmKicker<H>;

    fn new(vm_id: usize, vcpu_id: usize, _config: ()) -> VCpuResult<Self> {
        let frames = alloc_frames::<H>()?;
        fill::<H>(frames.iopm, crate::vmcb::IOPM_FRAMES, 0xff);
        fill::<H>(frames.msrpm, crate::vmcb::MSRPM_FRAMES, 0xff);
        let nasid = hw::svm_with_np().unwrap_or(2).max(2);
        let asid = 1 + NEXT_ASID.fetch_add(1, Ordering::Relaxed) % (nasid - 1);
        Ok(Self {
            frames,
            gprs: Gprs::default(),
            vm_id,
            vcpu_id,
            entry: GuestPhysAddr::from(0),
            ept_root: HostPhysAddr::from(0),
            asid,
            kick: Arc::new(KickState {
                flag: AtomicBool::new(false),
                cpu: AtomicUsize::new(NO_CPU),
            }),
            pending_read: None,
            irqs: [0; 4],
            reinject: None,
            icr_high: 0,
            init_sent: [0; 4],
            flush_tlb: true,
            host_irq: None,
            _hal: PhantomData,
        })
    }

    fn set_entry(&mut self, entry: GuestPhysAddr) -> VCpuResult {
        self.entry = entry;
        Ok(())
    }

    unsafe fn set_ept_root(&mut self, ept_root: HostPhysAddr) -> VCpuResult {
        if ept_root.as_usize() & 0xfff != 0 {
            return Err(
                VCpuError::invalid_input("the NPT root must be 4 KiB aligned")
                    .with_value(ept_root.as_usize() as u64),
            );
        }
        self.ept_root = ept_root;
        Ok(())
    }

    fn setup(&mut self, config: SvmSetupConfig) -> VCpuResult {
        let boot = match config.boot {
            GuestBoot::Tables(boot) => boot,
            GuestBoot::WriteTablesAt(at) => self.write_boot_tables(at)?,
        };
        let stack_top = config
            .stack_top
            .wrapping_sub(config.stack_stride.wrapping_mul(self.vcpu_id as u64));
        let v = self.vmcb();
        fill::<H>(self.frames.vmcb, 1, 0);
        // Control area.
        v.w32(
            ctrl::INTERCEPT_3,
            icpt3::INTR
                | icpt3::NMI
                | icpt3::INVD
                | icpt3::HLT
                | icpt3::INVLPGA
                | icpt3::IOIO
                | icpt3::MSR
                | icpt3::TASK_SWITCH
                | icpt3::SHUTDOWN,
        );
        v.w32(
            ctrl::INTERCEPT_4,
            icpt4::VMRUN
                | icpt4::VMMCALL
                | icpt4::VMLOAD
                | icpt4::VMSAVE
                | icpt4::STGI
                | icpt4::CLGI
                | icpt4::SKINIT
                | icpt4::WBINVD
                | icpt4::MONITOR
                | icpt4::MWAIT
                | icpt4::MWAIT_COND
                | icpt4::XSETBV,
        );
        v.w64(ctrl::IOPM_BASE_PA, self.frames.iopm.as_usize() as u64);
        v.w64(ctrl::MSRPM_BASE_PA, self.frames.msrpm.as_usize() as u64);
        v.w32(ctrl::ASID, self.asid);
        v.w64(ctrl::INT_CTL, int_ctl::V_INTR_MASKING);
        v.w64(ctrl::NP_ENABLE, 1);
        v.w64(ctrl::N_CR3, self.ept_root.as_usize() as u64);
        // Guest state: 64-bit long mode, flat segments.
        let code_attr = 0x29b; // P, S, type execute/read accessed, L
        let data_attr = 0xc93; // P, S, type read/write accessed, D/B, G
        v.seg(save::CS, CODE_SELECTOR, code_attr, 0xffff_ffff, 0);
        for seg in [save::DS, save::ES, save::SS, save::FS, save::GS] {
            v.seg(seg, DATA_SELECTOR, data_attr, 0xffff_ffff, 0);
        }
        v.seg(save::TR, 0, 0x8b, 0x67, 0);
        v.seg(save::LDTR, 0, 0x82, 0, 0);
        v.seg(save::GDTR, 0, 0, u32::from(boot.gdt_limit), boot.gdt_base);
        v.seg(save::IDTR, 0, 0, 0, 0);
        v.w8(save::CPL, 0);
        v.w64(save::EFER, 0x1500); // SVME, LMA, LME
        v.w64(save::CR4, (1 << 5) | (1 << 9) | (1 << 10)); // PAE, OSFXSR, OSXMMEXCPT
        v.w64(save::CR3, boot.cr3);
        v.w64(save::CR0, 0x8001_0033); // PG, WP, NE, ET, MP, PE
        v.w64(save::DR7, 0x400);
        v.w64(save::DR6, 0xffff_0ff0);
        v.w64(save::RFLAGS, 2);
        v.w64(save::RIP, self.entry.as_usize() as u64);
        v.w64(save::RSP, stack_top);
        v.w64(save::RAX, 0);
        v.w64(save::G_PAT, crate::vmcb::DEFAULT_PAT);
        let _ = ctrl::INTERCEPT_CR;
        let _ = ctrl::INTERCEPT_EXCEPTIONS;
        Ok(())
    }

    fn run(&mut self) -> VCpuResult<AxVCpuExitReason> {
        loop {
            if !self.enter() {
                return Ok(AxVCpuExitReason::Kicked);
            }
            if let Exit(e) = self.handle_exit()? {
                return Ok(e);
            }
        }
    }

    fn bind(&mut self) -> VCpuResult {
        self.kick.cpu.store(H::current_cpu_id(), Ordering::SeqCst);
        // ASIDs are not flushed one by one (no flush-by-ASID): flush all on a new CPU.
        self.flush_tlb = true;
        Ok(())
    }

    fn unbind(&mut self) -> VCpuResult {
        self.kick.cpu.store(NO_CPU, Ordering::SeqCst);
        Ok(())
    }

    fn set_gpr(&mut self, reg: usize, val: usize) -> VCpuResult {
        if reg >= 16 {
            return Err(VCpuError::invalid_input("x86 has GPRs 0..16").with_value(reg as u64));
        }
        self.set_reg(reg, val as u64);
        Ok(())
    }

    fn get_gpr(&self, reg: usize) -> VCpuResult<usize> {
        if reg >= 16 {
            return Err(VCpuError::invalid_input("x86 has GPRs 0..16").with_value(reg as u64));
        }
        Ok(self.reg(reg) as usize)
    }

    fn pc(&self) -> usize {
        self.vmcb().r64(save::RIP) as usize
    }

    fn set_pc(&mut self, pc: usize) -> VCpuResult {
        let v = self.vmcb();
        v.w64(save::RIP, pc as u64);
        v.w64(ctrl::INT_STATE, v.r64(ctrl::INT_STATE) & !1);
        Ok(())
    }

    fn set_return_value(&mut self, val: usize) {
        self.vmcb().w64(save::RAX, val as u64);
    }

    fn set_boot_arg(&mut self, _arg: usize) -> VCpuResult {
        // x86 INIT-SIPI carries no argument.
        Ok(())
    }

    fn complete_read(&mut self, value: u64) -> VCpuResult {
        let Some(read) = self.pending_read.take() else {
            return Err(VCpuError::bad_state("complete_read: no read exit pending"));
        };
        match read {
            PendingRead::Mmio {
                dst,
                dst_width,
                width,
                signed,
                len,
            } => {
                let loaded = decode::load_value(value, width, signed);
                let old = self.reg(dst.reg);
                let new = decode::merge_reg(old, loaded, dst_width, dst.high_byte);
                self.set_reg(dst.reg, new);
                self.advance(len);
            }
            PendingRead::Io { width, len } => {
                let old = self.reg(0);
                self.set_reg(
                    0,
                    decode::merge_reg(old, value & width.mask(), width, false),
                );
                self.advance(len);
            }
            PendingRead::Msr => {
                self.set_reg(0, value & 0xffff_ffff);
                self.set_reg(2, value >> 32);
                self.advance(2);
            }
        }
        Ok(())
    }

    fn inject_interrupt(&mut self, vector: usize) -> VCpuResult {
        check_vector(vector)?;
        self.irqs[vector / 64] |= 1 << (vector % 64);
        Ok(())
    }

    fn has_pending_interrupt(&self) -> bool {
        self.pending_any()
            || self
                .reinject
                .is_some_and(|ev| ev & event::TYPE_MASK == 0 && ev & event::VALID != 0)
    }

    fn check_interrupt_vector(vector: usize) -> VCpuResult {
        check_vector(vector)
    }

    fn kicker(&self) -> SvmKicker<H> {
        SvmKicker {
            state: self.kick.clone(),
            _hal: PhantomData,
        }
    }

    fn nested_page_table_changed(&mut self) -> VCpuResult {
        self.flush_tlb = true;
        Ok(())
    }
}

impl<H: AxVCpuHal> Drop for SvmVCpu<H> {
    fn drop(&mut self) {
        free_frames::<H>(&self.frames);
    }
}
