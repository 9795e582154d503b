//! The `linux` feature: instead of the conformance suite, the testbed is a small hypervisor
//! that boots an unmodified Linux kernel (Debian's amd64 vmlinux) on an `axvcpu-svm` or
//! `axvcpu-vmx` vCPU (whichever the host CPU offers, [`Backend`]) through `AxVCpu`.
//!
//! `cargo xtask boot x86_64 --kernel FILE ...` takes the vmlinux ELF out of the bzImage,
//! builds this hypervisor and has QEMU load the kernel's segments, the initrd and a
//! parameter block at fixed host addresses ([`loader`]). CPU 0 then checks the parameters,
//! zeroes the kernel's `.bss`, writes the command line (with `tsc_early_khz=` the host's
//! measured TSC rate and `tsc=reliable`: the guest's TSC is the host's) and the zero page (e820, initrd), maps
//! the guest's 256 MiB in a nested page table and runs vCPU 0 in 64-bit mode at the
//! kernel's entry (`startup_64`) with `rsi` = the zero page: Linux's 64-bit boot protocol.
//!
//! Devices ([`devices`]): COM1, the 8259 PIC pair, the 8254 PIT (its channel 0 is the
//! guest's clock event device, IRQ 0), port 0x61, a CMOS RTC; every other port reads all
//! ones. The guest runs with `acpi=off nolapic noapic`: no local APIC or I/O APIC is
//! emulated. That is the smallest set that reaches user space on one vCPU; SMP needs the
//! local APIC (INIT/SIPI through the ICR, which the backends already decode, IPIs and a
//! per-CPU timer: an x2APIC with TSC-deadline through MSR exits would do) and an MP table
//! or ACPI MADT to enumerate the CPUs, not done yet.
//!
//! Timer: channel 0's next IRQ is a host-time deadline; before each entry the hypervisor
//! arms its local APIC timer for it, so the guest exits (an INTR exit) when it is due and
//! the hypervisor raises IRQ 0 and injects the 8259's vector.
//!
//! MSRs: the backend keeps EFER and PAT in the guest state (VMCB/VMCS) and lets the guest
//! reach the syscall, FS/GS and SYSENTER MSRs (swapped by `vmload`/`vmsave` on SVM, at
//! bind/unbind on VMX); of the rest the hypervisor
//! answers a read of the TSC and injects #GP(0) for everything else
//! (`AxVCpu::inject_exception`), as hardware does for an MSR it does not have.
//!
//! The end: Linux without ACPI ends `poweroff -f` with `hlt` and interrupts off, which the
//! hypervisor takes as the power-off; a reset (keyboard-controller pulse, triple fault,
//! port 0xcf9) ends the run as a failure (what Linux does after a panic with `panic=-1`).
//!
//! Lines it prints: one before the guest starts (`linux: backend ...`), the guest's
//! console, and one after it ends (`linux: guest powered off ...; exits: ...`).

pub mod devices;
pub mod loader;

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use axvcpu::{AxVCpu, AxVCpuExitReason, GuestPhysAddr, HostPhysAddr, VCpuState};
use axvcpu_npt::{MapFlags, NestedPageTable};
use axvcpu_testbed::boot::Cpus;
use axvcpu_testbed::say;

use crate::arch::{Hal, VCpu, X86};
use crate::backend::{Backend, Boot, Setup};
use crate::boot::MAX_CPUS;
use crate::hal;
use devices::{pit_ticks, ticks_ns, Cmos, Pic, Pit, Uart, UartOut};
use loader::{Params, CMDLINE_GPA, INITRD_GPA, RAM_HPA, RAM_SIZE, ZERO_PAGE_GPA};

type Npt<B> = NestedPageTable<Hal<B>, <B as Backend>::Format>;

/// The guest's console line that says its init reached user space.
const USERSPACE_MARKER: &[u8] = b"AXVCPU-USERSPACE";
/// `rsi`: the zero page, in Linux's 64-bit boot protocol.
const RSI: usize = 6;
/// #GP.
const GP: u8 = 13;

/// Exit kinds counted for the closing line.
const KINDS: [&str; 10] = [
    "IoRead",
    "IoWrite",
    "MmioRead",
    "MmioWrite",
    "SysRegRead",
    "SysRegWrite",
    "Halt",
    "ExternalInterrupt",
    "Hypercall",
    "other",
];

/// The devices port accesses are counted by, for the closing line.
const DEVICES: [&str; 7] = ["COM1", "PIC", "PIT", "port61", "port80", "CMOS", "other"];

fn device_of(port: u16) -> usize {
    match port {
        0x3f8..=0x3ff => 0,
        0x20 | 0x21 | 0xa0 | 0xa1 => 1,
        0x40..=0x43 => 2,
        0x61 => 3,
        0x80 => 4,
        0x70 | 0x71 => 5,
        _ => 6,
    }
}

/// CPU 0's job with the `linux` feature; `true` when the guest powered off cleanly.
pub fn main<B: Backend>(cpus: &'static Cpus<X86<B>, MAX_CPUS>) -> bool {
    let _ = cpus;
    match boot::<B>() {
        Ok(ok) => ok,
        Err(why) => {
            say::<X86<B>>(format_args!("linux: FATAL {why}"));
            false
        }
    }
}

/// The devices and what the run counts.
#[derive(Default)]
struct Machine {
    uart: Uart,
    pic: Pic,
    pit: Pit,
    cmos: Cmos,
    line: Vec<u8>,
    userspace_ns: u64,
    exits: [u64; KINDS.len()],
    /// Port accesses by device ([`DEVICES`]).
    io: [u64; DEVICES.len()],
    halts_slept: u64,
    /// MSRs answered with #GP: the first few distinct ones, and how many accesses.
    gp_msrs: Vec<u32>,
    gp_count: u64,
    /// The guest asked for a reset.
    reset: bool,
}

fn boot<B: Backend>() -> Result<bool, String> {
    let t0 = hal::now_ns();
    // SAFETY: QEMU loaded the parameter block there (`cargo xtask boot`); RAM, identity
    // mapped, that nothing else uses. A block QEMU did not load reads as zeros and is
    // refused by its magic.
    let block = unsafe { core::slice::from_raw_parts(loader::PARAMS as *const u8, 4096) };
    let params = Params::parse(block)?;
    if params.cpus != 1 {
        return Err(format!(
            "{} vCPUs asked for: the x86 Linux hypervisor runs one (no local APIC emulated yet)",
            params.cpus
        ));
    }
    // The guest's TSC is the host's, constant: its rate as measured, and no watchdog
    // judging it against the PIT's jiffies (which drop the periods a busy host misses).
    let cmdline = format!(
        "{} tsc_early_khz={} tsc=reliable\0",
        params.cmdline,
        hal::tsc_per_ms()
    );
    let mut zero_page = [0u8; 4096];
    let initrd =
        (params.initrd_size != 0).then_some((INITRD_GPA as u64, params.initrd_size as u64));
    loader::zero_page(&mut zero_page, cmdline.len() - 1, initrd);
    // SAFETY: the guest's RAM: host RAM above the frame allocator's end (`hal::RAM_END`)
    // that nothing else uses. `parse` checked the kernel's span lies inside it, below the
    // initrd; the zero page and command line are below the kernel (at most 2 KiB + 20).
    unsafe {
        let ram = RAM_HPA as *mut u8;
        core::ptr::write_bytes(
            ram.add(params.load + params.image_size),
            0,
            params.mem_size - params.image_size,
        );
        core::ptr::copy_nonoverlapping(zero_page.as_ptr(), ram.add(ZERO_PAGE_GPA), 4096);
        core::ptr::copy_nonoverlapping(cmdline.as_ptr(), ram.add(CMDLINE_GPA), cmdline.len());
    }

    let mut npt = Npt::<B>::new().map_err(|e| format!("NPT: {e}"))?;
    npt.map(
        GuestPhysAddr::from(0),
        HostPhysAddr::from(RAM_HPA),
        RAM_SIZE,
        MapFlags::READ | MapFlags::WRITE | MapFlags::EXECUTE,
    )
    .map_err(|e| format!("NPT RAM: {e}"))?;
    let vm_id = axvcpu_testbed::vm::next_vm_id();
    let mut vcpu = AxVCpu::<VCpu<B>>::new(vm_id, 0, ()).map_err(|e| format!("vCPU 0: {e}"))?;
    // SAFETY: `npt` maps only the guest's RAM, and lives until after the vCPU is dropped
    // (declared before it, dropped after it).
    unsafe { vcpu.set_ept_root(npt.root_paddr()) }.map_err(|e| format!("vCPU 0: {e}"))?;
    vcpu.set_entry(GuestPhysAddr::from(params.entry as usize))
        .map_err(|e| format!("vCPU 0: {e}"))?;
    vcpu.setup(Setup {
        boot: Boot::WriteTablesAt(loader::BOOT_TABLES_GPA),
        stack_top: loader::STACK_TOP,
        stack_stride: 0x1000,
    })
    .map_err(|e| format!("vCPU 0: {e}"))?;
    vcpu.set_gpr(RSI, ZERO_PAGE_GPA)
        .map_err(|e| format!("vCPU 0: {e}"))?;
    hal::calibrate_apic_timer();
    say::<X86<B>>(format_args!(
        "linux: backend {} ({}), 1 vCPU; devices: COM1 8250, 8259 PIC, 8254 PIT (IRQ 0 on host APIC-timer deadlines), CMOS; kernel at {:#x} ({} KiB, {} KiB in memory), entry {:#x}, initrd {} KiB; TSC {} kHz; set up in {} ms",
        B::CRATE,
        B::DESCRIBE,
        params.load,
        params.image_size / 1024,
        params.mem_size / 1024,
        params.entry,
        params.initrd_size / 1024,
        hal::tsc_per_ms(),
        (hal::now_ns() - t0) / 1_000_000
    ));
    let mut m = Machine::default();
    let ended = run::<B>(&mut m, &mut vcpu);
    hal::disarm_timer();
    drop(vcpu);
    drop(npt);
    let ms = (hal::now_ns() - t0) / 1_000_000;
    let mut counts = String::new();
    for (k, n) in KINDS.iter().zip(&m.exits) {
        if *n != 0 {
            counts += &format!(" {k} {n},");
        }
    }
    let userspace = if m.userspace_ns == 0 {
        String::from("never")
    } else {
        format!("at {} ms", (m.userspace_ns - t0) / 1_000_000)
    };
    let mut io = String::new();
    for (d, n) in DEVICES.iter().zip(&m.io) {
        if *n != 0 {
            io += &format!(" {d} {n},");
        }
    }
    let mut gp = String::new();
    for msr in &m.gp_msrs {
        gp += &format!(" {msr:#x}");
    }
    say::<X86<B>>(format_args!(
        "linux: {} after {ms} ms; user space reached {userspace}; halts slept {}; #GP for {} MSR accesses ({}{}); port accesses:{}; exits:{}",
        match &ended {
            Ok(()) if !m.reset => String::from("guest powered off (hlt with interrupts off)"),
            Ok(()) => String::from("FAIL guest reset (a panic with panic=-1?)"),
            Err(e) => format!("FAIL vCPU 0: {e}"),
        },
        m.halts_slept,
        m.gp_count,
        gp.trim_start(),
        if m.gp_msrs.len() == GP_MSRS_SHOWN { " ..." } else { "" },
        io.trim_end_matches(','),
        counts.trim_end_matches(',')
    ));
    Ok(ended.is_ok() && !m.reset)
}

/// How many distinct #GP'd MSRs the closing line names.
const GP_MSRS_SHOWN: usize = 12;

/// Runs the vCPU until the guest powers off (`Ok`) or something fails.
fn run<B: Backend>(m: &mut Machine, vcpu: &mut AxVCpu<VCpu<B>>) -> Result<(), String> {
    vcpu.bind().map_err(|e| format!("bind: {e}"))?;
    let result = loop {
        m.deliver::<B>(vcpu)?;
        let exit = match vcpu.run() {
            Ok(e) => e,
            Err(e) => break Err(format!("run: {e} (rip {:#x})", vcpu.pc().unwrap_or(0))),
        };
        let kind = KINDS
            .iter()
            .position(|k| *k == exit.name())
            .unwrap_or(KINDS.len() - 1);
        m.exits[kind] += 1;
        match m.handle::<B>(vcpu, exit) {
            Ok(true) => {}
            Ok(false) => break Ok(()),
            Err(e) => break Err(e),
        }
    };
    hal::disarm_timer();
    let unbound = vcpu.unbind().map_err(|e| format!("unbind: {e}"));
    result.and(unbound)
}

impl Machine {
    /// Brings the devices up to now: IRQ 0 if the PIT fired, IRQ 4 from the UART, the
    /// 8259's vectors into the vCPU; then arms the host timer for the PIT's next IRQ.
    fn deliver<B: Backend>(&mut self, vcpu: &mut AxVCpu<VCpu<B>>) -> Result<(), String> {
        let now = pit_ticks(hal::now_ns());
        if self.pit.take_irq(now) {
            self.pic.set_line(0, true);
            self.pic.set_line(0, false);
        }
        self.pic.set_line(4, self.uart.irq());
        while let Some(v) = self.pic.ack() {
            vcpu.inject_interrupt(usize::from(v))
                .map_err(|e| format!("inject {v:#x}: {e}"))?;
        }
        match self.pit.next_irq() {
            Some(t) => hal::arm_timer_ns(ticks_ns(t).saturating_sub(hal::now_ns())),
            None => hal::disarm_timer(),
        }
        Ok(())
    }

    /// Serves one exit; `false` when the guest is done.
    fn handle<B: Backend>(
        &mut self,
        vcpu: &mut AxVCpu<VCpu<B>>,
        exit: AxVCpuExitReason,
    ) -> Result<bool, String> {
        let e = |e: axvcpu::VCpuError| format!("{e}");
        match exit {
            AxVCpuExitReason::IoRead { port, width } => {
                let v = self.io_read(port.0, width.size());
                vcpu.complete_read(v & width.mask()).map_err(e)?;
            }
            AxVCpuExitReason::IoWrite { port, data, .. } => self.io_write(port.0, data as u8),
            AxVCpuExitReason::MmioRead { width, .. } => {
                vcpu.complete_read(width.mask()).map_err(e)?;
            }
            AxVCpuExitReason::MmioWrite { .. } | AxVCpuExitReason::ExternalInterrupt { .. } => {}
            AxVCpuExitReason::SysRegRead { addr, .. } => match addr.0 {
                // The TSC: the guest's is the host's.
                0x10 => {
                    // SAFETY: reads the TSC.
                    let tsc = unsafe { core::arch::x86_64::_rdtsc() };
                    vcpu.complete_read(tsc).map_err(e)?;
                }
                msr => self.gp::<B>(vcpu, msr as u32)?,
            },
            AxVCpuExitReason::SysRegWrite { addr, .. } => self.gp::<B>(vcpu, addr.0 as u32)?,
            AxVCpuExitReason::Halt => {
                if !B::interrupts_enabled(vcpu.arch()) {
                    // `hlt` with interrupts off: nothing but an NMI or INIT wakes it.
                    return Ok(false);
                }
                if vcpu.state() == VCpuState::Blocked {
                    self.sleep::<B>(vcpu);
                }
            }
            AxVCpuExitReason::Hypercall { .. } => {
                vcpu.set_return_value(usize::MAX).map_err(e)?;
            }
            AxVCpuExitReason::SystemDown => {
                // A triple fault or a write to the shutdown port: a reset.
                self.reset = true;
                return Ok(false);
            }
            other => return Err(format!("unexpected exit {other:?}")),
        }
        Ok(!self.reset)
    }

    /// #GP(0) for an MSR the hypervisor does not give.
    fn gp<B: Backend>(&mut self, vcpu: &mut AxVCpu<VCpu<B>>, msr: u32) -> Result<(), String> {
        self.gp_count += 1;
        if !self.gp_msrs.contains(&msr) && self.gp_msrs.len() < GP_MSRS_SHOWN {
            self.gp_msrs.push(msr);
        }
        vcpu.inject_exception(GP, Some(0))
            .map_err(|e| format!("#GP for MSR {msr:#x}: {e}"))
    }

    /// The guest halted with interrupts on and nothing pending: the host sleeps until the
    /// PIT's next IRQ (its local APIC timer wakes it).
    fn sleep<B: Backend>(&mut self, _vcpu: &mut AxVCpu<VCpu<B>>) {
        let Some(t) = self.pit.next_irq() else {
            // No timer: nothing will ever wake the guest but a device; look again soon.
            return;
        };
        let deadline = ticks_ns(t);
        self.halts_slept += 1;
        loop {
            let now = hal::now_ns();
            if now >= deadline {
                return;
            }
            hal::arm_timer_ns(deadline - now);
            // SAFETY: `sti; hlt` sleeps until an interrupt (the timer just armed, at the
            // latest); its handler sends EOI; interrupts go off again after.
            unsafe { core::arch::asm!("sti", "hlt", "cli", options(nomem, nostack)) };
        }
    }

    fn io_read(&mut self, port: u16, size: usize) -> u64 {
        self.io[device_of(port)] += 1;
        let now = pit_ticks(hal::now_ns());
        let v = match port {
            0x3f8..=0x3ff => self.uart.read(port - 0x3f8),
            0x20 | 0x21 => self.pic.read(true, port == 0x20),
            0xa0 | 0xa1 => self.pic.read(false, port == 0xa0),
            0x40..=0x42 => self.pit.read(port - 0x40, now),
            0x61 => self.pit.read61(now),
            0x71 => self.cmos.read(),
            _ => return u64::MAX >> (64 - 8 * size as u32),
        };
        u64::from(v)
    }

    fn io_write(&mut self, port: u16, v: u8) {
        self.io[device_of(port)] += 1;
        let now = pit_ticks(hal::now_ns());
        match port {
            0x3f8..=0x3ff => {
                if let UartOut::Byte(b) = self.uart.write(port - 0x3f8, v) {
                    self.console(b);
                }
            }
            0x20 | 0x21 => self.pic.write(true, port == 0x20, v),
            0xa0 | 0xa1 => self.pic.write(false, port == 0xa0, v),
            0x40..=0x43 => self.pit.write(port - 0x40, v, now),
            0x61 => self.pit.write61(v, now),
            0x70 => self.cmos.select(v),
            // The keyboard controller's reset pulse, the PCI reset control register.
            0x64 if v == 0xfe => self.reset = true,
            0xcf9 if v & 4 != 0 => self.reset = true,
            _ => {}
        }
    }

    /// A byte of the guest's console: whole lines go out (never interleaved with the
    /// hypervisor's), and the user-space marker is noted.
    fn console(&mut self, b: u8) {
        match b {
            b'\r' => {}
            b'\n' => {
                if self.userspace_ns == 0 && self.line.starts_with(USERSPACE_MARKER) {
                    self.userspace_ns = hal::now_ns();
                }
                self.line.push(b'\n');
                hal::CONSOLE.write_bytes(&self.line);
                self.line.clear();
            }
            _ => {
                self.line.push(b);
                if self.line.len() >= 512 {
                    hal::CONSOLE.write_bytes(&self.line);
                    self.line.clear();
                }
            }
        }
    }
}
