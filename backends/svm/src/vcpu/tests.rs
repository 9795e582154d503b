//! Host tests of exit decoding, read completion and interrupt delivery: a vCPU over heap
//! frames (host-physical = host-virtual), exits written into its VMCB as `vmrun` would
//! leave them. Nothing here executes an SVM instruction.

extern crate std;

use axvcpu::{
    AccessFlags, AccessWidth, AxArchVCpu, AxErrorKind, AxVCpuExitReason, AxVCpuHal, GuestPhysAddr,
    HostPhysAddr, Port, SysRegAddr, VCpuKick,
};
use axvcpu_conformance::heap_hal::HeapHal;
use axvcpu_npt::{MapFlags, NestedPageTable, X86Npt};

use super::{GuestBoot, SvmSetupConfig, SvmVCpu};
use crate::regs::gpr;
use crate::vmcb::{ctrl, event, exit, icpt3, int_ctl, save};

const CODE: u64 = 0x1000;

/// A vCPU set up at [`CODE`] with paging off (guest-linear = guest-physical), the NPT
/// mapping one code page there holding `code`.
struct Rig {
    vcpu: SvmVCpu<HeapHal>,
    _npt: NestedPageTable<HeapHal, X86Npt>,
    code_page: HostPhysAddr,
}

impl Rig {
    fn new(code: &[u8]) -> Self {
        let mut npt = NestedPageTable::<HeapHal, X86Npt>::new().expect("NPT");
        let code_page = HeapHal::alloc_frame().expect("frame");
        // SAFETY: a frame of ours, 4 KiB.
        unsafe {
            std::ptr::copy_nonoverlapping(
                code.as_ptr(),
                code_page.as_usize() as *mut u8,
                code.len(),
            )
        };
        npt.map(
            GuestPhysAddr::from(CODE as usize),
            code_page,
            4096,
            MapFlags::READ | MapFlags::WRITE | MapFlags::EXECUTE,
        )
        .expect("map");
        let mut vcpu = SvmVCpu::<HeapHal>::new(0, 0, ()).expect("new");
        vcpu.set_entry(GuestPhysAddr::from(CODE as usize))
            .expect("entry");
        // SAFETY: the table outlives the vCPU (dropped after it: field order).
        unsafe { vcpu.set_ept_root(npt.root_paddr()) }.expect("root");
        vcpu.setup(SvmSetupConfig {
            boot: GuestBoot::default(),
            stack_top: 0x8000,
            stack_stride: 0,
        })
        .expect("setup");
        vcpu.vmcb().w64(save::CR0, 0x11); // PE, ET: no paging
        Self {
            vcpu,
            _npt: npt,
            code_page,
        }
    }

    /// Makes the VMCB look like `vmrun` returned with `code`, `info1`, `info2`.
    fn exit(&mut self, code: u64, info1: u64, info2: u64) -> axvcpu::VCpuResult<AxVCpuExitReason> {
        let v = self.vcpu.vmcb();
        v.w64(ctrl::EXITCODE, code);
        v.w64(ctrl::EXITINFO1, info1);
        v.w64(ctrl::EXITINFO2, info2);
        self.vcpu.decode_exit()
    }

    fn rip(&self) -> u64 {
        self.vcpu.vmcb().r64(save::RIP)
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        HeapHal::dealloc_frame(self.code_page);
    }
}

#[test]
fn vmmcall_is_a_hypercall_with_the_contract_registers_and_moves_rip_by_3() {
    let mut r = Rig::new(&[]);
    for (i, reg) in [gpr::RDI, gpr::RSI, gpr::RDX, gpr::RCX, gpr::R8, gpr::R9]
        .into_iter()
        .enumerate()
    {
        r.vcpu.set_gpr(reg, 10 + i).expect("set");
    }
    r.vcpu.set_gpr(gpr::RAX, 7).expect("set");
    let e = r.exit(exit::VMMCALL, 0, 0).expect("exit");
    assert_eq!(
        e,
        AxVCpuExitReason::Hypercall {
            nr: 7,
            args: [10, 11, 12, 13, 14, 15]
        }
    );
    assert_eq!(r.rip(), CODE + 3);
    r.vcpu.set_return_value(99);
    assert_eq!(r.vcpu.get_gpr(gpr::RAX).expect("get"), 99);
}

#[test]
fn handled_exits_are_nothing_and_kicks_and_nmis_are_reported() {
    let mut r = Rig::new(&[]);
    let nothing = Ok(AxVCpuExitReason::Nothing);
    assert_eq!(r.exit(exit::VINTR, 0, 0), nothing, "window opened");
    assert_eq!(
        r.exit(exit::INTR, 0, 0),
        nothing,
        "no host vector pending any more"
    );
    r.vcpu.kicker().kick();
    assert_eq!(r.exit(exit::INTR, 0, 0), Ok(AxVCpuExitReason::Kicked));
    assert_eq!(r.exit(exit::INTR, 0, 0), nothing, "the kick was taken once");
    assert_eq!(
        r.exit(exit::NMI, 0, 0),
        Ok(AxVCpuExitReason::ExternalInterrupt { vector: 2 })
    );
    assert_eq!(r.rip(), CODE, "none of them moves rip");
}

#[test]
fn hlt_shutdown_vmrun_failure_and_unknown_exits() {
    let mut r = Rig::new(&[]);
    assert_eq!(r.exit(exit::HLT, 0, 0), Ok(AxVCpuExitReason::Halt));
    assert_eq!(r.rip(), CODE + 1);
    assert_eq!(
        r.exit(exit::SHUTDOWN, 0, 0),
        Ok(AxVCpuExitReason::SystemDown)
    );
    assert_eq!(
        r.exit(u64::MAX, 0, 0),
        Ok(AxVCpuExitReason::FailEntry {
            hardware_entry_failure_reason: u64::MAX
        })
    );
    let err = r.exit(0x8e, 0, 0).expect_err("exit 0x8e is not handled");
    assert_eq!(
        (err.kind(), err.value()),
        (AxErrorKind::Unsupported, Some(0x8e))
    );
}

/// `EXITINFO1` of an IOIO exit: port, size, direction.
fn ioio(port: u16, bytes: u64, input: bool) -> u64 {
    (u64::from(port) << 16) | (bytes << 4) | u64::from(input)
}

#[test]
fn port_reads_merge_into_rax_and_writes_carry_its_low_bytes() {
    let mut r = Rig::new(&[]);
    r.vcpu
        .set_gpr(gpr::RAX, 0x1111_2222_3333_4444)
        .expect("set");
    assert_eq!(
        r.exit(exit::IOIO, ioio(0x60, 2, true), CODE + 1),
        Ok(AxVCpuExitReason::IoRead {
            port: Port(0x60),
            width: AccessWidth::Word
        })
    );
    assert_eq!(r.rip(), CODE, "complete_read moves rip");
    r.vcpu.complete_read(0xabcd_ef01).expect("complete");
    assert_eq!(
        r.vcpu.get_gpr(gpr::RAX).expect("get"),
        0x1111_2222_3333_ef01
    );
    assert_eq!(r.rip(), CODE + 1);
    assert!(r.vcpu.complete_read(0).is_err(), "one completion per read");
    assert_eq!(
        r.exit(exit::IOIO, ioio(0x61, 4, false), CODE + 3),
        Ok(AxVCpuExitReason::IoWrite {
            port: Port(0x61),
            width: AccessWidth::Dword,
            data: 0x3333_ef01
        })
    );
    assert_eq!(r.rip(), CODE + 3);
    let down = ioio(axvcpu::X86_SHUTDOWN_PORT, 1, false);
    assert_eq!(
        r.exit(exit::IOIO, down, CODE + 5),
        Ok(AxVCpuExitReason::SystemDown)
    );
    let outsb = ioio(0x60, 1, false) | 0b100;
    assert!(r.exit(exit::IOIO, outsb, CODE + 6).is_err(), "string I/O");
}

#[test]
fn msr_reads_fill_edx_eax_and_writes_join_them() {
    let mut r = Rig::new(&[]);
    r.vcpu.set_gpr(gpr::RCX, 0xc000_0103).expect("set");
    assert_eq!(
        r.exit(exit::MSR, 0, 0),
        Ok(AxVCpuExitReason::SysRegRead {
            addr: SysRegAddr(0xc000_0103),
            reg: gpr::RAX
        })
    );
    r.vcpu
        .complete_read(0x1234_5678_9abc_def0)
        .expect("complete");
    assert_eq!(r.vcpu.get_gpr(gpr::RAX).expect("get"), 0x9abc_def0);
    assert_eq!(r.vcpu.get_gpr(gpr::RDX).expect("get"), 0x1234_5678);
    assert_eq!(r.rip(), CODE + 2);
    assert_eq!(
        r.exit(exit::MSR, 1, 0),
        Ok(AxVCpuExitReason::SysRegWrite {
            addr: SysRegAddr(0xc000_0103),
            value: 0x1234_5678_9abc_def0
        })
    );
    assert_eq!(r.rip(), CODE + 4);
}

/// `EXITINFO1` of an NPF on an unmapped page.
const NPF_READ: u64 = 0;
const NPF_WRITE: u64 = 2;

#[test]
fn mmio_loads_and_stores_are_decoded_from_the_fetched_instruction() {
    // mov esi, dword ptr [rbx + 0x10]; mov byte ptr [rbx], ah
    let mut r = Rig::new(&[0x8b, 0x73, 0x10, 0x88, 0x23]);
    r.vcpu.set_gpr(gpr::RSI, u64::MAX as usize).expect("set");
    let addr = GuestPhysAddr::from(0xd000_0010usize);
    assert_eq!(
        r.exit(exit::NPF, NPF_READ, 0xd000_0010),
        Ok(AxVCpuExitReason::MmioRead {
            addr,
            width: AccessWidth::Dword,
            reg: Some(gpr::RSI),
            reg_width: AccessWidth::Dword,
            signed_ext: false
        })
    );
    r.vcpu
        .complete_read(0xffff_ffff_8765_4321)
        .expect("complete");
    assert_eq!(
        r.vcpu.get_gpr(gpr::RSI).expect("get"),
        0x8765_4321,
        "zero-extended"
    );
    assert_eq!(r.rip(), CODE + 3);
    r.vcpu.set_gpr(gpr::RAX, 0xab00).expect("set");
    assert_eq!(
        r.exit(exit::NPF, NPF_WRITE, 0xd000_0000),
        Ok(AxVCpuExitReason::MmioWrite {
            addr: GuestPhysAddr::from(0xd000_0000usize),
            width: AccessWidth::Byte,
            data: 0xab
        })
    );
    assert_eq!(r.rip(), CODE + 5);
}

#[test]
fn undecodable_mmio_is_an_error_with_the_instruction_bytes() {
    // add dword ptr [rbx], eax
    let mut r = Rig::new(&[0x01, 0x03, 0x90, 0x90, 0x90, 0x90, 0x90, 0x90]);
    let err = r
        .exit(exit::NPF, NPF_WRITE, 0xd000_0000)
        .expect_err("not a mov");
    assert_eq!(err.value(), Some(0x9090_9090_9090_0301));
}

#[test]
fn permission_fetch_and_walk_faults_are_nested_page_faults() {
    let mut r = Rig::new(&[]);
    let addr = GuestPhysAddr::from(0x5000usize);
    let npf = |access_flags| Ok(AxVCpuExitReason::NestedPageFault { addr, access_flags });
    assert_eq!(
        r.exit(exit::NPF, 1 | NPF_WRITE, 0x5000),
        npf(AccessFlags::WRITE)
    );
    assert_eq!(r.exit(exit::NPF, 1, 0x5000), npf(AccessFlags::READ));
    assert_eq!(r.exit(exit::NPF, 0x10, 0x5000), npf(AccessFlags::EXECUTE));
    assert_eq!(r.exit(exit::NPF, 1 << 33, 0x5000), npf(AccessFlags::READ));
    assert_eq!(r.rip(), CODE);
}

#[test]
fn icr_writes_are_the_guests_ipis() {
    // mov dword ptr [rbx + 0x310], eax; mov dword ptr [rbx + 0x300], ecx
    let mut r = Rig::new(&[
        0x89, 0x83, 0x10, 0x03, 0x00, 0x00, 0x89, 0x8b, 0x00, 0x03, 0x00, 0x00,
    ]);
    r.vcpu.set_gpr(gpr::RAX, 3 << 24).expect("set");
    r.vcpu.set_gpr(gpr::RCX, 0x4055).expect("set");
    assert_eq!(
        r.exit(exit::NPF, NPF_WRITE, 0xfee0_0310),
        Ok(AxVCpuExitReason::Nothing)
    );
    assert_eq!(
        r.exit(exit::NPF, NPF_WRITE, 0xfee0_0300),
        Ok(AxVCpuExitReason::SendIPI {
            target_cpu: 3,
            target_cpu_aux: 0,
            send_to_all: false,
            send_to_self: false,
            vector: 0x55
        })
    );
    assert_eq!(r.rip(), CODE + 12);
}

/// The VMCB's injection fields after `prepare_injection`.
fn injection(r: &mut Rig) -> (u64, bool) {
    r.vcpu.prepare_injection();
    let v = r.vcpu.vmcb();
    let window = v.r64(ctrl::INT_CTL) & int_ctl::V_IRQ != 0;
    assert_eq!(window, v.r32(ctrl::INTERCEPT_3) & icpt3::VINTR != 0);
    (v.r64(ctrl::EVENTINJ), window)
}

#[test]
fn a_vector_injected_twice_before_the_guest_takes_it_is_delivered_once() {
    let mut r = Rig::new(&[]);
    assert!(SvmVCpu::<HeapHal>::check_interrupt_vector(31).is_err());
    assert!(SvmVCpu::<HeapHal>::check_interrupt_vector(256).is_err());
    r.vcpu.inject_interrupt(0x40).expect("inject");
    r.vcpu.inject_interrupt(0x40).expect("inject");
    r.vcpu.inject_interrupt(0x41).expect("inject");
    // Interrupts masked (RFLAGS = 2): a window is requested, nothing injected.
    assert_eq!(injection(&mut r), (0, true));
    assert!(r.vcpu.has_pending_interrupt());
    r.vcpu.vmcb().w64(save::RFLAGS, 0x202);
    assert_eq!(
        injection(&mut r),
        (0x41 | event::VALID, false),
        "highest first"
    );
    assert_eq!(injection(&mut r), (0x40 | event::VALID, false));
    assert_eq!(injection(&mut r), (0, false), "0x40 merged: taken once");
    assert!(!r.vcpu.has_pending_interrupt());
    // An interrupt shadow holds it too.
    r.vcpu.inject_interrupt(0x40).expect("inject");
    r.vcpu.vmcb().w64(ctrl::INT_STATE, 1);
    assert_eq!(injection(&mut r), (0, true));
}

#[test]
fn a_vcpu_frees_its_frames() {
    let before = HeapHal::live_frames();
    drop(Rig::new(&[]));
    assert_eq!(HeapHal::live_frames(), before);
}

/// `EVENTINJ` of #GP(0) and of #UD.
const GP0: u64 = 13 | event::TYPE_EXCEPTION | event::VALID | event::EV;
const UD: u64 = 6 | event::TYPE_EXCEPTION | event::VALID;

#[test]
fn efer_and_pat_live_in_the_vmcb_and_bad_values_get_gp() {
    let mut r = Rig::new(&[]);
    let efer = r.vcpu.vmcb().r64(save::EFER);
    r.vcpu.set_gpr(gpr::RCX, 0xc000_0080).expect("set");
    assert_eq!(r.exit(exit::MSR, 0, 0), Ok(AxVCpuExitReason::Nothing));
    assert_eq!(
        r.vcpu.get_gpr(gpr::RAX).expect("get") as u64,
        efer & !(1 << 12)
    );
    assert_eq!(r.rip(), CODE + 2);
    // Set NXE and SCE: SVME stays.
    r.vcpu
        .set_gpr(gpr::RAX, (efer & !(1 << 12)) as usize | (1 << 11) | 1)
        .expect("set");
    r.vcpu.set_gpr(gpr::RDX, 0).expect("set");
    assert_eq!(r.exit(exit::MSR, 1, 0), Ok(AxVCpuExitReason::Nothing));
    assert_eq!(r.vcpu.vmcb().r64(save::EFER), efer | (1 << 11) | 1);
    assert_eq!(r.rip(), CODE + 4);
    // A reserved PAT type: #GP(0), rip stays on the wrmsr.
    r.vcpu.set_gpr(gpr::RCX, 0x277).expect("set");
    r.vcpu.set_gpr(gpr::RAX, 0x0000_0002).expect("set");
    assert_eq!(r.exit(exit::MSR, 1, 0), Ok(AxVCpuExitReason::Nothing));
    assert_eq!(r.rip(), CODE + 4);
    assert_eq!(injection(&mut r).0, GP0);
}

#[test]
fn cpuid_is_filtered_and_cache_and_monitor_instructions_are_answered() {
    let mut r = Rig::new(&[]);
    r.vcpu.set_gpr(gpr::RAX, 1).expect("set");
    r.vcpu.set_gpr(gpr::RCX, 0).expect("set");
    assert_eq!(r.exit(exit::CPUID, 0, 0), Ok(AxVCpuExitReason::Nothing));
    let ecx = r.vcpu.get_gpr(gpr::RCX).expect("get") as u32;
    assert_ne!(ecx & (1 << 31), 0, "the hypervisor bit");
    assert_eq!(
        ecx & ((1 << 5) | (1 << 3) | (1 << 26)),
        0,
        "no VMX, MONITOR, XSAVE"
    );
    assert_eq!(r.rip(), CODE + 2);
    r.vcpu.set_gpr(gpr::RAX, 0x8000_0001).expect("set");
    r.exit(exit::CPUID, 0, 0).expect("cpuid");
    assert_eq!(
        r.vcpu.get_gpr(gpr::RCX).expect("get") & (1 << 2),
        0,
        "no SVM"
    );
    assert_eq!(r.exit(exit::WBINVD, 0, 0), Ok(AxVCpuExitReason::Nothing));
    assert_eq!(r.exit(exit::INVD, 0, 0), Ok(AxVCpuExitReason::Nothing));
    assert_eq!(r.rip(), CODE + 8);
    assert_eq!(r.exit(exit::MWAIT, 0, 0), Ok(AxVCpuExitReason::Nothing));
    assert_eq!(r.rip(), CODE + 8, "#UD leaves rip on the instruction");
    assert_eq!(injection(&mut r).0, UD);
    assert_eq!(r.exit(exit::XSETBV, 0, 0), Ok(AxVCpuExitReason::Nothing));
    assert_eq!(injection(&mut r).0, GP0);
}

#[test]
fn an_injected_exception_replaces_a_read_and_rewinds_a_refused_wrmsr() {
    let mut r = Rig::new(&[]);
    r.vcpu.set_gpr(gpr::RCX, 0x8b).expect("set");
    assert!(matches!(
        r.exit(exit::MSR, 0, 0),
        Ok(AxVCpuExitReason::SysRegRead { .. })
    ));
    r.vcpu.inject_exception(13, Some(0)).expect("inject");
    assert!(r.vcpu.complete_read(0).is_err(), "the read was dropped");
    assert_eq!(r.rip(), CODE);
    assert_eq!(injection(&mut r).0, GP0);
    assert!(matches!(
        r.exit(exit::MSR, 1, 0),
        Ok(AxVCpuExitReason::SysRegWrite { .. })
    ));
    assert_eq!(r.rip(), CODE + 2);
    r.vcpu.inject_exception(13, Some(0)).expect("inject");
    assert_eq!(r.rip(), CODE, "back on the wrmsr");
    assert!(
        r.vcpu.inject_exception(13, Some(0)).is_err(),
        "one event at a time"
    );
    assert_eq!(r.rip(), CODE);
    assert_eq!(injection(&mut r).0, GP0);
    assert!(
        r.vcpu.inject_exception(32, None).is_err(),
        "not an exception"
    );
    assert!(r.vcpu.inject_exception(2, None).is_err(), "NMI");
}

#[test]
fn the_vmload_msrs_pass_through_and_others_trap() {
    use crate::vmcb::{msrpm_read_bit, PASSTHROUGH_MSRS};
    assert_eq!(msrpm_read_bit(0), Some((0, 0)));
    assert_eq!(msrpm_read_bit(0xc000_0082), Some((0x820, 4)));
    assert_eq!(msrpm_read_bit(0xc001_0117), Some((0x1045, 6)));
    assert_eq!(msrpm_read_bit(0x4000_0000), None);
    let r = Rig::new(&[]);
    let map = r.vcpu.frames.msrpm.as_usize() as *const u8;
    for (msr, open) in [
        (0xc000_0082, true),
        (0x174, true),
        (0xc000_0080, false),
        (0x10, false),
    ] {
        let (byte, bit) = msrpm_read_bit(msr).expect("in the map");
        // SAFETY: the vCPU's 8 KiB map, `byte` inside it.
        let bits = unsafe { map.add(byte).read() } >> bit & 3;
        assert_eq!(bits == 0, open, "{msr:#x}");
        assert_eq!(PASSTHROUGH_MSRS.contains(&msr), open);
    }
}

#[test]
fn a_real_mode_start_is_at_the_sipi_address_and_refuses_mmio_decoding() {
    let npt = NestedPageTable::<HeapHal, X86Npt>::new().expect("NPT");
    let mut vcpu = SvmVCpu::<HeapHal>::new(0, 1, ()).expect("new");
    // SAFETY: the table outlives the vCPU (dropped after it).
    unsafe { vcpu.set_ept_root(npt.root_paddr()) }.expect("root");
    let real = SvmSetupConfig {
        boot: GuestBoot::RealMode,
        stack_top: 0x8000,
        stack_stride: 0x1000,
    };
    vcpu.set_entry(GuestPhysAddr::from(0x9a010)).expect("entry");
    assert_eq!(
        vcpu.setup(real).map_err(|e| e.kind()),
        Err(AxErrorKind::InvalidInput),
        "no SIPI points there"
    );
    vcpu.set_entry(GuestPhysAddr::from(0x9a000)).expect("entry");
    vcpu.setup(real).expect("setup");
    let v = vcpu.vmcb();
    assert_eq!(v.r64(save::CS) & 0xffff, 0x9a00, "CS selector");
    assert_eq!(v.r64(save::CS + 8), 0x9a000, "CS base");
    assert_eq!((v.r64(save::RIP), v.r64(save::RSP)), (0, 0));
    assert_eq!(v.r64(save::CR0), 0x6000_0010);
    assert_eq!(v.r64(save::EFER), 1 << 12, "SVME only");
    assert!(!v.in_64bit_code());
    assert_eq!(v.rip_linear(), 0x9a000);
    // `out 0x80, al` (2 bytes) in real mode: port I/O is decoded from the exit alone.
    v.w64(save::RAX, 0x1234);
    v.w64(ctrl::EXITCODE, exit::IOIO);
    v.w64(ctrl::EXITINFO1, (0x80 << 16) | (1 << 4));
    v.w64(ctrl::EXITINFO2, 2);
    assert_eq!(
        vcpu.decode_exit(),
        Ok(AxVCpuExitReason::IoWrite {
            port: Port(0x80),
            width: AccessWidth::Byte,
            data: 0x34
        })
    );
    assert_eq!(vcpu.vmcb().r64(save::RIP), 2);
    // An MMIO access from 16-bit code is refused, not decoded as 64-bit code.
    let v = vcpu.vmcb();
    v.w64(ctrl::EXITCODE, exit::NPF);
    v.w64(ctrl::EXITINFO1, 2);
    v.w64(ctrl::EXITINFO2, 0xfee0_00b0);
    assert_eq!(
        vcpu.decode_exit().map_err(|e| e.kind()),
        Err(AxErrorKind::Unsupported)
    );
    drop(vcpu);
    drop(npt);
}
