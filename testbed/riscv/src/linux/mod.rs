//! The `linux` feature: instead of the conformance suite, the testbed is a small hypervisor
//! that boots an unmodified Linux kernel on `axvcpu-riscv` vCPUs through `AxVCpu`.
//!
//! `cargo xtask boot riscv64 --kernel FILE ...` builds it and has QEMU (`-m 1G`, 2 harts)
//! load the kernel, the initrd and the parameter block at fixed host addresses
//! ([`loader`]). Hart 0 then checks the kernel's `Image` header (refusing an ELF file, a
//! bad header or a kernel that does not fit), writes the device tree ([`fdt`]), maps the
//! guest's RAM in a G-stage table and runs vCPU 0 at the kernel's entry with `a0` = 0,
//! `a1` = the tree. vCPU `n` runs on hart `n`, started by the guest's SBI HSM
//! `hart_start`; an idle hart sleeps in `wfi`. Exits are served in [`vcpus`]: the NS16550A console
//! ([`axvcpu_testbed::ns16550`]) and the PLIC ([`plic`]) through MMIO exits (the console's
//! "received data" and "transmitter empty" interrupts reach the guest as its external
//! interrupt), IPIs to the target vCPUs through their
//! `VCpuHandle`, remote fences performed on the target harts, `hart_get_status`,
//! `cycle` and the HPM counters (trapped; read as `time` and zero), `Halt` (a host `wfi`:
//! the guest's timer, an IPI or a kick ends it), `CpuDown` (the vCPU is parked for a later
//! `hart_start`). `SystemDown` ends the run: cleanly for SBI SRST shutdown with no
//! failure reason, as a failure otherwise (a reboot is what Linux asks for after a panic
//! with `panic=-1`).
//!
//! Console input: the host UART's receive interrupt goes through the host PLIC to hart 0
//! (it ends the guest's run or the host's `wfi` there); vCPU 0's loop, at that interrupt's exit,
//! moves what the host received into the guest's UART. A prompt the guest leaves unfinished
//! is printed when the guest waits (`Halt`), so an interactive shell shows it.
//!
//! Lines it prints: one before the guest starts (`linux: backend ..., N vCPUs, guest in
//! VS-mode`), the guest's console, and one after it ends (`linux: guest powered off ...;
//! exits: ...`).

pub mod fdt;
pub mod loader;
pub mod plic;
mod vcpus;

use alloc::format;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU64};

use axvcpu::{AxVCpu, GuestPhysAddr, HostPhysAddr, VCpuHandle};
use axvcpu_npt::{GStageTable, MapFlags};
use axvcpu_riscv::{GStageMode, RiscvSetupConfig};
use axvcpu_testbed::boot::Cpus;
use axvcpu_testbed::ns16550::Ns16550;
use axvcpu_testbed::os::{Run, VCpuSlots};
use axvcpu_testbed::params::{Params, FLAG_PRINT_DTB};
use axvcpu_testbed::say;

use crate::arch::{Hal, Riscv, VCpu};
use crate::boot::MAX_HARTS;
use crate::hal;
use loader::{DTB_ROOM, INITRD_OFFSET, KERNEL_STAGING_OFFSET, RAM_GPA, RAM_HPA, RAM_SIZE};

/// The guest's NS16550A (guest physical, QEMU virt's address).
pub const UART_GPA: usize = 0x1000_0000;
/// Its PLIC source (QEMU virt's).
pub const UART_IRQ: usize = 10;
/// The guest's PLIC (QEMU virt's address).
pub const PLIC_GPA: usize = 0x0c00_0000;

/// What the vCPUs share.
struct Machine {
    cpus: &'static Cpus<Riscv, MAX_HARTS>,
    setup: RiscvSetupConfig,
    /// The console and the interrupt controller (one lock: the console's line feeds it).
    devices: spin::Mutex<(Ns16550, plic::Plic)>,
    /// Per vCPU: its PLIC context has an interrupt to take (its loop raises or lowers the
    /// guest's external interrupt to match before each entry).
    eip: Vec<AtomicBool>,
    handles: Vec<VCpuHandle<VCpu>>,
    /// vCPUs not started or stopped, and those `hart_start` made ready.
    slots: VCpuSlots<VCpu>,
    /// Per vCPU: remote fences asked for and done (see `vcpus::remote_fence`).
    fences_asked: Vec<AtomicU64>,
    fences_done: Vec<AtomicU64>,
    /// Per vCPU: inside its run loop, bound to its hart.
    in_loop: Vec<AtomicBool>,
    run: Run,
}

impl Machine {
    /// Ends the run: every vCPU leaves its loop, every other hart its `secondary` loop.
    fn finish(&self) {
        self.run.stop_all(&self.handles);
        let me = hal::hart_id();
        for hart in (0..MAX_HARTS).filter(|&h| h != me && self.cpus.online(h)) {
            hal::send_ipi(hart);
        }
    }
}

/// Hart 0's job with the `linux` feature; `true` when the guest powered off cleanly.
pub fn main(cpus: &'static Cpus<Riscv, MAX_HARTS>) -> bool {
    match boot(cpus) {
        Ok(ok) => ok,
        Err(why) => {
            say::<Riscv>(format_args!("linux: FATAL {why}"));
            false
        }
    }
}

/// The host hart's identity as the firmware reports it (SBI base `mvendorid`, `marchid`,
/// `mimpid`).
fn cpu_model() -> String {
    let id = |fid| hal::sbi(0x10, fid, 0, 0, 0).1;
    format!(
        "mvendorid {:#x} marchid {:#x} mimpid {:#x}",
        id(4),
        id(5),
        id(6)
    )
}

fn boot(cpus: &'static Cpus<Riscv, MAX_HARTS>) -> Result<bool, String> {
    let t0 = hal::now_ns();
    // SAFETY: QEMU loaded the parameter block there (`cargo xtask boot riscv64`); RAM that
    // nothing else uses (past the guest's). A block QEMU did not load is refused by its
    // magic.
    let block = unsafe { core::slice::from_raw_parts(loader::PARAMS as *const u8, 4096) };
    let params = Params::parse(block, loader::KERNEL_ROOM, loader::INITRD_ROOM)?;
    let online = (0..MAX_HARTS).filter(|&c| cpus.online(c)).count();
    if params.cpus == 0 || params.cpus > online {
        return Err(format!(
            "{} vCPUs asked for, {online} harts online (one vCPU per hart; QEMU -smp)",
            params.cpus
        ));
    }
    let staging = RAM_HPA + KERNEL_STAGING_OFFSET;
    // SAFETY: QEMU loaded the kernel file there, `kernel_size` bytes (checked against the
    // staging area by `parse`).
    let kernel = unsafe { core::slice::from_raw_parts(staging as *const u8, params.kernel_size) };
    let initrd_len = params.initrd_size;
    let place = loader::place(kernel, INITRD_OFFSET).map_err(|e| format!("kernel refused: {e}"))?;
    let kernel_len = kernel.len();
    let initrd = (initrd_len != 0).then(|| {
        let start = (RAM_GPA + INITRD_OFFSET) as u64;
        (start, start + initrd_len as u64)
    });
    let sstc = axvcpu_riscv::has_sstc();
    let dtb = fdt::build(&fdt::Machine {
        ram: (RAM_GPA as u64, RAM_SIZE as u64),
        cpus: params.cpus as u32,
        sstc,
        cmdline: params.cmdline,
        initrd,
    })
    .map_err(|e| format!("device tree: {e}"))?;
    if dtb.len() > DTB_ROOM {
        return Err("the device tree is larger than 2 MiB".into());
    }
    let dtb_offset = RAM_SIZE - DTB_ROOM;
    if params.flags & FLAG_PRINT_DTB != 0 {
        say::<Riscv>(format_args!(
            "linux: device tree {}",
            axvcpu_testbed::fdt::hex(&dtb)
        ));
    }
    // SAFETY: the guest's RAM: host RAM above the frame allocator's end (`hal::RAM_END`)
    // that nothing else uses. The kernel moves (overlapping copy) within the room below the
    // initrd, which `place` checked it fits in; the device tree goes above the initrd's
    // room, which `parse` checked.
    unsafe {
        let ram = RAM_HPA as *mut u8;
        if place.offset != KERNEL_STAGING_OFFSET {
            core::ptr::copy(
                ram.add(KERNEL_STAGING_OFFSET),
                ram.add(place.offset),
                kernel_len,
            );
        }
        core::ptr::write_bytes(
            ram.add(place.offset + kernel_len),
            0,
            place.size - kernel_len,
        );
        core::ptr::copy_nonoverlapping(dtb.as_ptr(), ram.add(dtb_offset), dtb.len());
    }

    // Sv39x4 (every hgatp has it) covers the guest's RAM, and its walks are a level
    // shorter than Sv48x4's: under QEMU each of the guest's page-table reads is itself
    // translated by a G-stage walk, so the level counts.
    let gstage = GStageMode::Sv39x4;
    let mut npt = GStageTable::<Hal>::new(gstage).map_err(|e| format!("G-stage: {e}"))?;
    npt.map(
        GuestPhysAddr::from(RAM_GPA),
        HostPhysAddr::from(RAM_HPA),
        RAM_SIZE,
        MapFlags::READ | MapFlags::WRITE | MapFlags::EXECUTE,
    )
    .map_err(|e| format!("G-stage RAM: {e}"))?;
    let setup = RiscvSetupConfig {
        gstage,
        ..RiscvSetupConfig::default()
    };
    let vm_id = axvcpu_testbed::vm::next_vm_id();
    let mut vcpus = Vec::new();
    for i in 0..params.cpus {
        let mut v = AxVCpu::<VCpu>::new(vm_id, i, ()).map_err(|e| format!("vCPU {i}: {e}"))?;
        // SAFETY: `npt` maps only the guest's RAM, and is freed only after every vCPU has
        // left its run loop (`Run::vcpus_bound` back at 0), or never.
        unsafe { v.set_ept_root(npt.root_paddr()) }.map_err(|e| format!("vCPU {i}: {e}"))?;
        vcpus.push(Some(v));
    }
    let handles = vcpus.iter().flatten().map(AxVCpu::handle).collect();
    let mut boot_vcpu = vcpus
        .first_mut()
        .and_then(Option::take)
        .ok_or("no vCPU 0")?;
    boot_vcpu
        .set_entry(GuestPhysAddr::from(RAM_GPA + place.offset))
        .and_then(|()| boot_vcpu.setup(setup))
        .and_then(|()| boot_vcpu.set_boot_arg(RAM_GPA + dtb_offset))
        .map_err(|e| format!("vCPU 0: {e}"))?;
    let n = params.cpus;
    let machine = Arc::new(Machine {
        cpus,
        setup,
        devices: spin::Mutex::new((Ns16550::default(), plic::Plic::default())),
        eip: (0..n).map(|_| AtomicBool::new(false)).collect(),
        handles,
        slots: VCpuSlots::new(vcpus),
        fences_asked: (0..n).map(|_| AtomicU64::new(0)).collect(),
        fences_done: (0..n).map(|_| AtomicU64::new(0)).collect(),
        in_loop: (0..n).map(|_| AtomicBool::new(false)).collect(),
        run: Run::new(t0),
    });
    say::<Riscv>(format_args!(
        "linux: backend axvcpu-riscv (G-stage {gstage:?}, Sstc {sstc}), CPU {}, {n} vCPUs, guest in VS-mode; ISA {}; kernel at {:#x} ({} KiB, image {} KiB), initrd {} KiB, device tree {} bytes, set up in {} ms",
        cpu_model(),
        fdt::isa(sstc),
        RAM_GPA + place.offset,
        kernel_len / 1024,
        place.size / 1024,
        initrd_len / 1024,
        dtb.len(),
        (hal::now_ns() - t0) / 1_000_000
    ));
    for hart in (1..MAX_HARTS).filter(|&h| cpus.online(h)) {
        let m = machine.clone();
        cpus.post(
            hart,
            alloc::boxed::Box::new(move || vcpus::secondary(&m, hart)),
        )
        .map_err(|e| format!("hart {hart}: {e:?}"))?;
    }
    hal::enable_console_input();
    let ended = machine
        .run
        .after_boot_vcpu(vcpus::run_vcpu(&machine, boot_vcpu));
    machine.finish();
    say::<Riscv>(format_args!(
        "{}",
        machine.run.closing(
            hal::now_ns(),
            ended.as_ref().map(drop).map_err(String::as_str),
            "SBI SRST shutdown",
            "guest reset or reported a failure (SBI SRST: a panic with panic=-1?)",
        )
    ));
    let clean = machine.run.clean();
    machine.run.free_when_out(npt, hal::now_ns);
    Ok(ended.is_ok() && clean)
}
