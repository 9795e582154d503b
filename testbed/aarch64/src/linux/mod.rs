//! The `linux` feature: instead of the conformance suite, the testbed is a small hypervisor
//! that boots an unmodified Linux kernel on `axvcpu-aarch64` vCPUs through `AxVCpu`.
//!
//! `cargo xtask boot aarch64 --kernel FILE ...` builds it and has QEMU load the kernel,
//! the initrd and a parameter block at fixed host addresses ([`loader`]: the kernel at the
//! start of the guest's RAM, the initrd where the guest finds it). CPU 0 then: checks the
//! kernel's `Image` header and moves the kernel where it says (refusing a bad header or a
//! kernel that does not fit), writes the device tree ([`fdt`]), maps the guest's RAM and the GICv2 virtual CPU interface (at the
//! guest's GICC) in a stage-2 table, and runs vCPU 0 at the kernel's entry with `x0` = the
//! tree. vCPU `n` runs on CPU `n`, started by the guest's PSCI `CPU_ON`. Exits are served
//! here: MMIO to the emulated distributor ([`devices`]) and PL011
//! ([`axvcpu_testbed::pl011`]), SGIs to the target
//! vCPUs through their `VCpuHandle`, trapped debug/PMU registers (reads as zero, writes
//! ignored), PSCI `AFFINITY_INFO`, unknown hypercalls and SMCCC calls (`NOT_SUPPORTED`),
//! `Halt` (a host `wfi`: the guest's timer PPI or a kick ends it), `CPU_OFF` (the vCPU is
//! parked for a later `CPU_ON`). `SystemDown` ends the run: cleanly for PSCI `SYSTEM_OFF`,
//! as a failure for `SYSTEM_RESET` (what Linux does after a panic with `panic=-1`; the
//! hypervisor does not reboot guests).
//!
//! Console input: the host PL011's receive interrupt is routed to CPU 0 (it ends the guest's
//! run or the host's `wfi` there); vCPU 0's loop, at that interrupt's exit, moves what the
//! host received into the guest's PL011 and raises its interrupt (SPI 1) at the vCPU the
//! guest's distributor routes it to. A prompt the guest leaves unfinished is printed when
//! the guest waits (`Halt`), so an interactive shell shows it.
//!
//! Lines it prints: one before the guest starts (`linux: backend ..., N vCPUs, guest at
//! EL1`), the guest's console, and one after it ends (`linux: guest powered off ...;
//! exits: ...`).

pub mod devices;
pub mod fdt;
pub mod loader;
mod vcpus;

use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;

use axvcpu::{AxVCpu, GuestPhysAddr, HostPhysAddr, VCpuHandle};
use axvcpu_aarch64::Aarch64SetupConfig;
use axvcpu_npt::{MapFlags, NestedPageTable};
use axvcpu_testbed::boot::Cpus;
use axvcpu_testbed::os::{Run, VCpuSlots};
use axvcpu_testbed::say;

use crate::arch::{Aarch64, Hal, VCpu};
use crate::boot::MAX_CPUS;
use crate::hal;
use axvcpu_testbed::params::{Params, FLAG_PRINT_DTB};
use axvcpu_testbed::pl011::Pl011;
use devices::{Gicd, GICC_IPA};
use loader::{DTB_ROOM, INITRD_OFFSET, RAM_HPA, RAM_IPA, RAM_SIZE};
use vcpus::run_vcpu;

type Npt = NestedPageTable<Hal, axvcpu_npt::Aarch64Stage2>;

/// What the vCPUs share.
struct Machine {
    cpus: &'static Cpus<Aarch64, MAX_CPUS>,
    setup: Aarch64SetupConfig,
    gicd: spin::Mutex<Gicd>,
    uart: spin::Mutex<Pl011>,
    handles: Vec<VCpuHandle<VCpu>>,
    /// vCPUs not started or turned off, and those `CPU_ON` made ready.
    slots: VCpuSlots<VCpu>,
    run: Run,
}

impl Machine {
    /// Ends the run: every vCPU leaves its loop.
    fn finish(&self) {
        self.run.stop_all(&self.handles);
    }
}

/// CPU 0's job with the `linux` feature; `true` when the guest powered off cleanly.
pub fn main(cpus: &'static Cpus<Aarch64, MAX_CPUS>) -> bool {
    match boot(cpus) {
        Ok(ok) => ok,
        Err(why) => {
            say::<Aarch64>(format_args!("linux: FATAL {why}"));
            false
        }
    }
}

fn boot(cpus: &'static Cpus<Aarch64, MAX_CPUS>) -> Result<bool, String> {
    use alloc::format;
    let t0 = hal::now_ns();
    // SAFETY: QEMU loaded the parameter block there (`cargo xtask boot`); RAM, identity
    // mapped, that nothing else uses. A block QEMU did not load reads as zeros and is
    // refused by its magic.
    let block = unsafe { core::slice::from_raw_parts(loader::PARAMS as *const u8, 4096) };
    let params = Params::parse(
        block,
        loader::INITRD_STAGING - loader::KERNEL_STAGING,
        loader::STAGING_END - loader::INITRD_STAGING,
    )?;
    let online = (0..MAX_CPUS).filter(|&c| cpus.online(c)).count();
    if params.cpus == 0 || params.cpus > online {
        return Err(format!(
            "{} vCPUs asked for, {online} host CPUs online (one vCPU per CPU; QEMU -smp)",
            params.cpus
        ));
    }
    // SAFETY: QEMU loaded the kernel file there, `kernel_size` bytes (checked against the
    // staging area by `parse`).
    let kernel = unsafe {
        core::slice::from_raw_parts(loader::KERNEL_STAGING as *const u8, params.kernel_size)
    };
    // SAFETY: as above, for the initrd.
    let initrd = unsafe {
        core::slice::from_raw_parts(loader::INITRD_STAGING as *const u8, params.initrd_size)
    };
    let place =
        loader::place(kernel, INITRD_OFFSET, 0).map_err(|e| format!("kernel refused: {e}"))?;
    // The kernel is moved below: only its length is used from here on.
    let kernel_len = kernel.len();
    let initrd_range = (!initrd.is_empty()).then(|| {
        let start = (RAM_IPA + INITRD_OFFSET) as u64;
        (start, start + initrd.len() as u64)
    });
    let dtb = fdt::build(&fdt::Machine {
        ram: (RAM_IPA as u64, RAM_SIZE as u64),
        cpus: params.cpus as u32,
        cmdline: params.cmdline,
        initrd: initrd_range,
    })
    .map_err(|e| format!("device tree: {e}"))?;
    if dtb.len() > DTB_ROOM {
        return Err("the device tree is larger than 2 MiB".into());
    }
    let dtb_offset = RAM_SIZE - DTB_ROOM;
    if params.flags & FLAG_PRINT_DTB != 0 {
        say::<Aarch64>(format_args!(
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
        if place.offset != 0 {
            core::ptr::copy(ram, ram.add(place.offset), kernel_len);
        }
        core::ptr::write_bytes(
            ram.add(place.offset + kernel_len),
            0,
            place.size - kernel_len,
        );
        core::ptr::copy_nonoverlapping(dtb.as_ptr(), ram.add(dtb_offset), dtb.len());
    }

    let mut npt = Npt::new().map_err(|e| format!("stage 2: {e}"))?;
    npt.map(
        GuestPhysAddr::from(RAM_IPA),
        HostPhysAddr::from(RAM_HPA),
        RAM_SIZE,
        MapFlags::READ | MapFlags::WRITE | MapFlags::EXECUTE,
    )
    .map_err(|e| format!("stage 2 RAM: {e}"))?;
    npt.map(
        GuestPhysAddr::from(GICC_IPA),
        HostPhysAddr::from(hal::GICV),
        0x2000,
        MapFlags::READ | MapFlags::WRITE,
    )
    .map_err(|e| format!("stage 2 GICV: {e}"))?;

    let setup = Aarch64SetupConfig {
        vgic: true,
        ..Aarch64SetupConfig::default()
    };
    let vm_id = axvcpu_testbed::vm::next_vm_id();
    let mut vcpus = Vec::new();
    for i in 0..params.cpus {
        let mut v = AxVCpu::<VCpu>::new(vm_id, i, ()).map_err(|e| format!("vCPU {i}: {e}"))?;
        // SAFETY: `npt` maps only the guest's RAM and the GICV frame, and is freed only
        // after every vCPU has left its run loop (`Run::vcpus_bound` back at 0), or never.
        unsafe { v.set_ept_root(npt.root_paddr()) }.map_err(|e| format!("vCPU {i}: {e}"))?;
        if i == 0 {
            v.set_entry(GuestPhysAddr::from(RAM_IPA + place.offset))
                .map_err(|e| format!("vCPU 0: {e}"))?;
            v.setup(setup).map_err(|e| format!("vCPU 0: {e}"))?;
        }
        vcpus.push(Some(v));
    }
    let handles = vcpus.iter().flatten().map(AxVCpu::handle).collect();
    let mut boot_vcpu = vcpus
        .first_mut()
        .and_then(Option::take)
        .ok_or("no vCPU 0")?;
    boot_vcpu
        .set_gpr(0, RAM_IPA + dtb_offset)
        .map_err(|e| format!("vCPU 0: {e}"))?;
    let machine = Arc::new(Machine {
        cpus,
        setup,
        gicd: spin::Mutex::new(Gicd::new(params.cpus)),
        uart: spin::Mutex::new(Pl011::default()),
        handles,
        slots: VCpuSlots::new(vcpus),
        run: Run::new(t0),
    });
    say::<Aarch64>(format_args!(
        "linux: backend axvcpu-aarch64 (vGIC: GICv2 virtual CPU interface), CPU {}, {} vCPUs, guest at EL1; kernel at {:#x} ({} KiB, image {} KiB), initrd {} KiB, device tree {} bytes, set up in {} ms",
        hal::cpu_model(),
        params.cpus,
        RAM_IPA + place.offset,
        kernel_len / 1024,
        place.size / 1024,
        initrd.len() / 1024,
        dtb.len(),
        (hal::now_ns() - t0) / 1_000_000
    ));
    hal::enable_console_input();
    let ended = machine.run.after_boot_vcpu(run_vcpu(&machine, boot_vcpu));
    machine.finish();
    say::<Aarch64>(format_args!(
        "{}",
        machine.run.closing(
            hal::now_ns(),
            ended.as_ref().map(drop).map_err(String::as_str),
            "PSCI SYSTEM_OFF",
            "guest reset (PSCI SYSTEM_RESET: a panic with panic=-1?)",
        )
    ));
    let clean = machine.run.clean();
    machine.run.free_when_out(npt, hal::now_ns);
    Ok(ended.is_ok() && clean)
}
