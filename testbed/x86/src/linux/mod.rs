//! The `linux` feature: instead of the conformance suite, the testbed is a small hypervisor
//! that boots an unmodified Linux kernel (Debian's amd64 vmlinux) on `axvcpu-svm` or
//! `axvcpu-vmx` vCPUs (whichever the host CPU offers, [`Backend`]) through `AxVCpu`.
//!
//! `cargo xtask boot x86_64 --kernel FILE ...` takes the vmlinux ELF out of the bzImage,
//! builds this hypervisor and has QEMU load the kernel's segments, the initrd and a
//! parameter block at fixed host addresses ([`loader`]). CPU 0 then checks the parameters,
//! zeroes the kernel's `.bss`, writes the command line (with `tsc_early_khz=` the host's
//! measured TSC rate and `tsc=reliable`: the guest's TSC is the host's), the zero page
//! (e820, initrd) and the MP table ([`mptable`]: one processor per vCPU), maps the guest's
//! 256 MiB in a nested page table and runs vCPU 0 in 64-bit mode at the kernel's entry
//! (`startup_64`) with `rsi` = the zero page: Linux's 64-bit boot protocol.
//!
//! SMP ([`vcpus`]): vCPU `n` runs on CPU `n`. Linux starts a secondary with INIT and a
//! start-up IPI written to its local APIC's ICR; the backend reports them as `CpuUp` with
//! the SIPI's address, and the hypervisor makes a new vCPU there in real mode
//! (`GuestBoot::RealMode`; Linux's trampoline goes to long mode itself) for the job CPU
//! `n` runs for the whole boot. A secondary that halts with interrupts off (CPU offline,
//! or stopped for the power-off) leaves its loop and waits for the next INIT-SIPI.
//!
//! Devices ([`devices`], shared as [`ports`]): COM1, the 8259 PIC pair, the 8254 PIT, port
//! 0x61, a CMOS RTC; every other port reads all ones. A local APIC per vCPU ([`lapic`]: xAPIC registers
//! through MMIO exits, IPIs, one-shot/periodic timer). The guest runs with `acpi=off
//! noapic`: no I/O APIC, the 8259 reaches vCPU 0 as ExtINT through its LINT0. The devices
//! are behind one spin lock, each local APIC behind its own.
//!
//! Timers: the PIT's next IRQ and each local APIC timer's next expiry are host-time
//! deadlines; before each entry a vCPU's CPU arms its own host local APIC timer for the
//! nearest of its deadlines (the PIT is vCPU 0's), so the guest exits (an INTR exit) when
//! one is due and the hypervisor raises the interrupt. A halted vCPU's CPU sleeps in
//! `sti; hlt` until then or until another CPU's kick (an IPI for it, an 8259 interrupt for
//! vCPU 0).
//!
//! MSRs: the backend keeps EFER and PAT in the guest state (VMCB/VMCS) and lets the guest
//! reach the syscall, FS/GS and SYSENTER MSRs (swapped by `vmload`/`vmsave` on SVM, at
//! bind/unbind on VMX); of the rest the hypervisor answers the TSC, `IA32_APIC_BASE`
//! (the xAPIC at 0xfee0_0000, enabled, vCPU 0 the bootstrap processor; writes ignored)
//! and `IA32_TSC_DEADLINE` (the vCPU's local APIC timer), and injects #GP(0) for everything else (`AxVCpu::inject_exception`), as hardware does
//! for an MSR it does not have.
//!
//! The end: Linux without ACPI ends `poweroff -f` with `hlt` and interrupts off on vCPU 0,
//! which the hypervisor takes as the power-off; a reset (keyboard-controller pulse, triple
//! fault, port 0xcf9) ends the run as a failure (what Linux does after a panic with
//! `panic=-1`).
//!
//! Lines it prints: one before the guest starts (`linux: backend ...`), the guest's
//! console, and one after it ends (`linux: guest powered off ...; exits: ...`).

pub mod devices;
pub mod lapic;
pub mod loader;
pub mod mptable;
mod ports;
mod vcpus;

use alloc::format;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use axvcpu::{AxVCpu, GuestPhysAddr, HostPhysAddr, VCpuHandle};
use axvcpu_npt::{MapFlags, NestedPageTable};
use axvcpu_testbed::boot::Cpus;
use axvcpu_testbed::os::Run;
use axvcpu_testbed::say;

use crate::arch::{Hal, VCpu, X86};
use crate::backend::{Backend, Boot, Setup};
use crate::boot::MAX_CPUS;
use crate::hal;
use lapic::Lapic;
use loader::{Params, CMDLINE_GPA, INITRD_GPA, RAM_HPA, RAM_SIZE, ZERO_PAGE_GPA};
use ports::{Devices, DEVICES, GP_MSRS_SHOWN};

type Npt<B> = NestedPageTable<Hal<B>, <B as Backend>::Format>;

/// `rsi`: the zero page, in Linux's 64-bit boot protocol.
const RSI: usize = 6;

/// CPU 0's job with the `linux` feature; `true` when the guest powered off cleanly.
pub fn main<B: Backend>(cpus: &'static Cpus<X86<B>, MAX_CPUS>) -> bool {
    match boot::<B>(cpus) {
        Ok(ok) => ok,
        Err(why) => {
            say::<X86<B>>(format_args!("linux: FATAL {why}"));
            false
        }
    }
}

/// What the vCPUs share.
struct Machine<B: Backend> {
    vm_id: usize,
    /// The nested page table every vCPU uses (kept alive by `boot` until every vCPU left
    /// its loop).
    npt_root: HostPhysAddr,
    devices: spin::Mutex<Devices>,
    lapics: Vec<spin::Mutex<Lapic>>,
    /// Each vCPU's handle, replaced when an INIT-SIPI makes a new vCPU for its CPU.
    handles: Vec<spin::Mutex<Option<VCpuHandle<VCpu<B>>>>>,
    /// vCPUs a start-up IPI made, until their CPU's job takes them.
    starting: Vec<spin::Mutex<Option<AxVCpu<VCpu<B>>>>>,
    /// A new start waits for CPU `n`: its running vCPU (if any) makes way.
    start_waiting: Vec<AtomicBool>,
    /// IPIs delivered to a local APIC, and NMI IPIs dropped (not modelled).
    ipis: AtomicU64,
    nmis_dropped: AtomicU64,
    run: Run,
}

impl<B: Backend> Machine<B> {
    fn vcpus(&self) -> usize {
        self.lapics.len()
    }

    fn kick(&self, id: usize) {
        if let Some(h) = self.handles.get(id).and_then(|h| h.lock().clone()) {
            h.kick();
        }
    }

    /// Ends the run: every vCPU leaves its loop (kicked out of its guest, its CPU woken).
    fn finish(&self) {
        self.run.stop();
        for id in 0..self.vcpus() {
            self.kick(id);
            if id != 0 {
                hal::wake(id);
            }
        }
    }
}

fn boot<B: Backend>(cpus: &'static Cpus<X86<B>, MAX_CPUS>) -> Result<bool, String> {
    let t0 = hal::now_ns();
    // SAFETY: QEMU loaded the parameter block there (`cargo xtask boot`); RAM, identity
    // mapped, that nothing else uses. A block QEMU did not load reads as zeros and is
    // refused by its magic.
    let block = unsafe { core::slice::from_raw_parts(loader::PARAMS as *const u8, 4096) };
    let params = Params::parse(block)?;
    let n = params.cpus;
    let online = (0..MAX_CPUS).filter(|&c| cpus.online(c)).count();
    if n == 0 || n > online {
        return Err(format!(
            "{n} vCPUs asked for: the x86 Linux hypervisor runs 1 to {online} (one per CPU online)"
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
    let mut mp = [0u8; mptable::SIZE];
    let leaf1 = core::arch::x86_64::__cpuid(1);
    let mp_len = mptable::write(&mut mp, n, leaf1.eax, leaf1.edx);
    // SAFETY: the guest's RAM: host RAM above the frame allocator's end (`hal::RAM_END`)
    // that nothing else uses. `parse` checked the kernel's span lies inside it, below the
    // initrd; the zero page and command line are below the kernel (at most 2 KiB + 20),
    // the MP table in the BIOS area the e820 map reserves.
    unsafe {
        let ram = RAM_HPA as *mut u8;
        core::ptr::write_bytes(
            ram.add(params.load + params.image_size),
            0,
            params.mem_size - params.image_size,
        );
        core::ptr::copy_nonoverlapping(zero_page.as_ptr(), ram.add(ZERO_PAGE_GPA), 4096);
        core::ptr::copy_nonoverlapping(cmdline.as_ptr(), ram.add(CMDLINE_GPA), cmdline.len());
        core::ptr::copy_nonoverlapping(mp.as_ptr(), ram.add(mptable::MPTABLE_GPA), mp_len);
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
    // SAFETY: `npt` maps only the guest's RAM, and is freed only after every vCPU has left
    // its loop (`bound` back at 0), or never.
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
    let machine = Arc::new(Machine::<B> {
        vm_id,
        npt_root: npt.root_paddr(),
        devices: spin::Mutex::new(Devices::default()),
        lapics: (0..n)
            .map(|i| spin::Mutex::new(Lapic::new(i as u32)))
            .collect(),
        handles: (0..n)
            .map(|i| spin::Mutex::new((i == 0).then(|| vcpu.handle())))
            .collect(),
        starting: (0..n).map(|_| spin::Mutex::new(None)).collect(),
        start_waiting: (0..n).map(|_| AtomicBool::new(false)).collect(),
        ipis: AtomicU64::new(0),
        nmis_dropped: AtomicU64::new(0),
        run: Run::new(t0),
    });
    say::<X86<B>>(format_args!(
        "linux: backend {} ({}), {n} vCPU{}; devices: COM1 8250, 8259 PIC, 8254 PIT, a local APIC per vCPU (xAPIC, timer on host APIC-timer deadlines), CMOS, MP table; kernel at {:#x} ({} KiB, {} KiB in memory), entry {:#x}, initrd {} KiB; TSC {} kHz; set up in {} ms",
        B::CRATE,
        B::DESCRIBE,
        if n == 1 { "" } else { "s" },
        params.load,
        params.image_size / 1024,
        params.mem_size / 1024,
        params.entry,
        params.initrd_size / 1024,
        hal::tsc_per_ms(),
        (hal::now_ns() - t0) / 1_000_000
    ));
    for cpu in 1..n {
        let m = machine.clone();
        cpus.post(
            cpu,
            alloc::boxed::Box::new(move || vcpus::secondary(&m, cpu)),
        )
        .map_err(|e| format!("CPU {cpu}: {e:?}"))?;
    }
    let ended = vcpus::run_vcpu(&machine, vcpu).map(drop);
    hal::disarm_timer();
    machine.finish();
    say::<X86<B>>(format_args!("{}", closing(&machine, &ended)));
    let clean = machine.run.clean();
    machine.run.free_when_out(npt, hal::now_ns);
    Ok(ended.is_ok() && clean)
}

/// The closing line ([`Run::closing_with`]) with the devices' and local APICs' figures.
fn closing<B: Backend>(m: &Machine<B>, ended: &Result<(), String>) -> String {
    let d = m.devices.lock();
    let mut io = String::new();
    for (name, n) in DEVICES.iter().zip(&d.io) {
        if *n != 0 {
            io += &format!(" {name} {n},");
        }
    }
    let mut gp = String::new();
    for msr in &d.gp_msrs {
        gp += &format!(" {msr:#x}");
    }
    let mut timers = String::new();
    for l in &m.lapics {
        timers += &format!(" {}", l.lock().timer_irqs);
    }
    let extra = format!(
        "; local APIC timer interrupts by vCPU:{timers}; IPIs {} (NMIs dropped {}); #GP for {} MSR accesses ({}{}); port accesses:{}",
        m.ipis.load(Ordering::Relaxed),
        m.nmis_dropped.load(Ordering::Relaxed),
        d.gp_count,
        gp.trim_start(),
        if d.gp_msrs.len() == GP_MSRS_SHOWN { " ..." } else { "" },
        io.trim_end_matches(','),
    );
    m.run.closing_with(
        hal::now_ns(),
        ended.as_ref().map(drop).map_err(String::as_str),
        "hlt with interrupts off",
        "guest reset (a panic with panic=-1?)",
        &extra,
    )
}
