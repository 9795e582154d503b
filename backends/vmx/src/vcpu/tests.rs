//! Host tests of exit decoding, read completion and interrupt delivery: a vCPU over heap
//! frames (host-physical = host-virtual), its VMCS the fake of `vmcs.rs` (fields in slots
//! of the VMCS frame), exits written there as a VM exit would leave them. Nothing here
//! executes a VMX instruction.

use axvcpu::{
    AccessFlags, AccessWidth, AxArchVCpu, AxErrorKind, AxVCpuExitReason, AxVCpuHal, GuestPhysAddr,
    HostPhysAddr, Port, SysRegAddr, VCpuKick,
};
use axvcpu_conformance::heap_hal::HeapHal;
use axvcpu_npt::{Ept, MapFlags, NestedPageTable};

use super::{GuestBoot, VmxSetupConfig, VmxVCpu, KICK_VECTOR};
use crate::controls::{proc, Controls, VmxCaps, BOCHS_CAPS};
use crate::regs::gpr;
use crate::vmcs::{ctrl, exit, guest, host, info, intr, GUEST_CR0};

const CODE: u64 = 0x1000;

fn bochs_controls() -> Controls {
    let caps = VmxCaps::read(|m| {
        BOCHS_CAPS
            .iter()
            .find(|&&(n, _)| n == m)
            .map_or(0, |&(_, v)| v)
    });
    Controls::compute(&caps).expect("Bochs's controls")
}

/// A vCPU set up at [`CODE`] with paging off (guest-linear = guest-physical), the EPT
/// mapping one code page there holding `code`, its (fake) VMCS filled as `bind` fills it.
struct Rig {
    vcpu: VmxVCpu<HeapHal>,
    _npt: NestedPageTable<HeapHal, Ept>,
    code_page: HostPhysAddr,
}

impl Rig {
    fn new(code: &[u8]) -> Self {
        let mut npt = NestedPageTable::<HeapHal, Ept>::new().expect("EPT");
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
        let mut vcpu = VmxVCpu::<HeapHal>::new(0, 0, ()).expect("new");
        vcpu.set_entry(GuestPhysAddr::from(CODE as usize))
            .expect("entry");
        // SAFETY: the table outlives the vCPU (dropped after it: field order).
        unsafe { vcpu.set_ept_root(npt.root_paddr()) }.expect("root");
        vcpu.setup(VmxSetupConfig {
            boot: GuestBoot::default(),
            stack_top: 0x8000,
            stack_stride: 0,
        })
        .expect("setup");
        vcpu.init_vmcs(bochs_controls()).expect("init");
        vcpu.vmcs().write(guest::CR0, 0x31); // PE, ET, NE: no paging
        Self {
            vcpu,
            _npt: npt,
            code_page,
        }
    }

    /// Makes the VMCS look like a VM exit with `reason`, `qualification` and instruction
    /// length `len` (and, for EPT exits, `gpa`) just happened, and decodes it.
    fn exit(
        &mut self,
        reason: u32,
        qualification: u64,
        len: u64,
    ) -> axvcpu::VCpuResult<AxVCpuExitReason> {
        let v = self.vcpu.vmcs();
        v.write(info::EXIT_REASON, u64::from(reason));
        v.write(info::EXIT_QUALIFICATION, qualification);
        v.write(info::EXIT_INSN_LEN, len);
        self.vcpu.decode_exit()
    }

    fn ept(&mut self, qualification: u64, gpa: u64) -> axvcpu::VCpuResult<AxVCpuExitReason> {
        self.vcpu.vmcs().write(info::GUEST_PHYSICAL_ADDR, gpa);
        self.exit(exit::EPT_VIOLATION, qualification, 0)
    }

    fn rip(&self) -> u64 {
        self.vcpu.pc() as u64
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        HeapHal::dealloc_frame(self.code_page);
    }
}

#[test]
fn the_vmcs_holds_the_controls_and_the_long_mode_guest() {
    let r = Rig::new(&[]);
    let v = r.vcpu.vmcs();
    let c = bochs_controls();
    assert_eq!(v.read(ctrl::PROC_BASED), u64::from(c.proc));
    assert_eq!(v.read(ctrl::PROC_BASED2), u64::from(c.proc2));
    assert_eq!(
        v.read(ctrl::EPTP),
        Ept::eptp(r._npt.root_paddr(), true),
        "WB, 4 levels, A/D"
    );
    assert_ne!(v.read(ctrl::VPID), 0);
    assert_eq!(v.read(guest::CR4) & (1 << 13), 1 << 13, "VMXE, fixed");
    assert_eq!(
        v.read(ctrl::CR4_SHADOW) & (1 << 13),
        0,
        "the guest reads it clear"
    );
    assert_eq!(v.read(ctrl::CR0_SHADOW), GUEST_CR0);
    assert_eq!(v.read(guest::EFER), 0x500);
    assert_eq!(v.read(guest::ES_SELECTOR + 2), 0x08, "CS");
    assert_eq!(v.read(guest::ES_ACCESS_RIGHTS + 2), 0xa09b, "64-bit code");
    assert_eq!(v.read(guest::VMCS_LINK_POINTER), u64::MAX);
    assert_eq!(v.read(guest::RIP), CODE);
    assert_eq!(v.read(guest::RSP), 0x8000);
    // The MSR bitmap is all ones but for the pass-through MSRs: every other MSR exits.
    let bitmap = v.read(ctrl::MSR_BITMAP) as usize as *const u8;
    // SAFETY: the vCPU's bitmap frame, alive with it.
    let byte = |i: usize| unsafe { *bitmap.add(i) };
    let exits = |msr: u32| {
        let (at, bit) = crate::vmcs::msr_bitmap_read_bit(msr).expect("in the bitmap");
        (byte(at) >> bit & 1 == 1, byte(at + 0x800) >> bit & 1 == 1)
    };
    assert_eq!(exits(0xc000_0082), (false, false), "LSTAR");
    assert_eq!(exits(0x174), (false, false), "SYSENTER_CS");
    assert_eq!(exits(0xc000_0080), (true, true), "EFER");
    assert_eq!(exits(0xc000_0103), (true, true), "TSC_AUX");
    let open: u32 = (0..4096).map(|i| byte(i).count_zeros()).sum();
    assert_eq!(open, 2 * crate::vmcs::PASSTHROUGH_MSRS.len() as u32);
}

#[test]
fn vmcall_is_a_hypercall_with_the_contract_registers_and_moves_rip_by_its_length() {
    let mut r = Rig::new(&[]);
    for (i, reg) in [gpr::RDI, gpr::RSI, gpr::RDX, gpr::RCX, gpr::R8, gpr::R9]
        .into_iter()
        .enumerate()
    {
        r.vcpu.set_gpr(reg, 10 + i).expect("set");
    }
    r.vcpu.set_gpr(gpr::RAX, 7).expect("set");
    let e = r.exit(exit::VMCALL, 0, 3).expect("exit");
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

fn intr_exit(r: &mut Rig, reason: u32, info_field: u32) -> axvcpu::VCpuResult<AxVCpuExitReason> {
    r.vcpu
        .vmcs()
        .write(info::EXIT_INTR_INFO, u64::from(info_field));
    r.exit(reason, 0, 0)
}

#[test]
fn host_interrupts_kicks_and_nmis() {
    let mut r = Rig::new(&[]);
    let nothing = Ok(AxVCpuExitReason::Nothing);
    let ext = exit::EXTERNAL_INTERRUPT;
    assert_eq!(
        r.exit(exit::INTERRUPT_WINDOW, 0, 0),
        nothing,
        "window opened"
    );
    assert_eq!(
        intr_exit(&mut r, ext, intr::VALID | 0x30),
        Ok(AxVCpuExitReason::ExternalInterrupt { vector: 0x30 })
    );
    let kick = intr::VALID | u32::from(KICK_VECTOR);
    assert_eq!(intr_exit(&mut r, ext, kick), nothing, "late kick IPI");
    r.vcpu.kicker().kick();
    assert_eq!(intr_exit(&mut r, ext, kick), Ok(AxVCpuExitReason::Kicked));
    assert_eq!(
        intr_exit(&mut r, ext, kick),
        nothing,
        "the kick was taken once"
    );
    let nmi = intr::VALID | intr::TYPE_NMI | 2;
    assert_eq!(
        intr_exit(&mut r, exit::EXCEPTION_NMI, nmi),
        Ok(AxVCpuExitReason::ExternalInterrupt { vector: 2 })
    );
    // A guest exception (type 3, #PF) never exits with an empty bitmap: an error if it does.
    let pf = intr::VALID | (3 << 8) | 14;
    assert!(intr_exit(&mut r, exit::EXCEPTION_NMI, pf).is_err());
    assert_eq!(r.rip(), CODE, "none of them moves rip");
}

#[test]
fn hlt_triple_fault_cpuid_failed_entries_and_unknown_exits() {
    let mut r = Rig::new(&[]);
    assert_eq!(r.exit(exit::HLT, 0, 1), Ok(AxVCpuExitReason::Halt));
    assert_eq!(r.rip(), CODE + 1);
    assert_eq!(
        r.exit(exit::TRIPLE_FAULT, 0, 0),
        Ok(AxVCpuExitReason::SystemDown)
    );
    r.vcpu.set_gpr(gpr::RAX, 1).expect("set");
    r.vcpu.set_gpr(gpr::RCX, 0).expect("set");
    assert_eq!(r.exit(exit::CPUID, 0, 2), Ok(AxVCpuExitReason::Nothing));
    let ecx = r.vcpu.get_gpr(gpr::RCX).expect("get") as u64;
    assert_eq!(ecx & (1 << 5), 0, "no VMX for the guest");
    let host = crate::hw::cpuid(1, 0);
    let host = axvcpu_x86::cpuid::Regs {
        eax: host.0,
        ebx: host.1,
        ecx: host.2,
        edx: host.3,
    };
    assert_eq!(ecx, u64::from(axvcpu_x86::cpuid::filter(1, 0, host).ecx));
    assert_ne!(ecx & (1 << 31), 0, "the hypervisor bit");
    assert_eq!(r.rip(), CODE + 3);
    // Invalid guest state: bit 31 and the qualification.
    assert_eq!(
        r.exit(exit::FAILED_ENTRY | exit::INVALID_GUEST_STATE, 3, 0),
        Ok(AxVCpuExitReason::FailEntry {
            hardware_entry_failure_reason: (3 << 32) | 0x8000_0021
        })
    );
    let err = r.exit(56, 0, 3).expect_err("exit 56 is not handled");
    assert_eq!(
        (err.kind(), err.value()),
        (AxErrorKind::Unsupported, Some(56))
    );
    r.vcpu.vmcs().write(info::GUEST_PHYSICAL_ADDR, 0xdead_0000);
    let err = r
        .exit(exit::EPT_MISCONFIG, 0, 0)
        .expect_err("misconfiguration");
    assert_eq!(err.value(), Some(0xdead_0000));
}

/// The qualification of an I/O exit: port, size, direction.
fn io(port: u16, bytes: u64, input: bool) -> u64 {
    (u64::from(port) << 16) | (bytes - 1) | (u64::from(input) << 3)
}

#[test]
fn port_reads_merge_into_rax_and_writes_carry_its_low_bytes() {
    let mut r = Rig::new(&[]);
    r.vcpu
        .set_gpr(gpr::RAX, 0x1111_2222_3333_4444)
        .expect("set");
    assert_eq!(
        r.exit(exit::IO, io(0x60, 2, true), 2),
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
    assert_eq!(r.rip(), CODE + 2);
    assert!(r.vcpu.complete_read(0).is_err(), "one completion per read");
    assert_eq!(
        r.exit(exit::IO, io(0x61, 4, false), 1),
        Ok(AxVCpuExitReason::IoWrite {
            port: Port(0x61),
            width: AccessWidth::Dword,
            data: 0x3333_ef01
        })
    );
    assert_eq!(r.rip(), CODE + 3);
    let down = io(axvcpu::X86_SHUTDOWN_PORT, 1, false);
    assert_eq!(r.exit(exit::IO, down, 1), Ok(AxVCpuExitReason::SystemDown));
    let outsb = io(0x60, 1, false) | 0x10;
    assert!(r.exit(exit::IO, outsb, 1).is_err(), "string I/O");
}

#[test]
fn msr_reads_fill_edx_eax_and_writes_join_them() {
    let mut r = Rig::new(&[]);
    r.vcpu.set_gpr(gpr::RCX, 0xc000_0103).expect("set");
    assert_eq!(
        r.exit(exit::RDMSR, 0, 2),
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
        r.exit(exit::WRMSR, 0, 2),
        Ok(AxVCpuExitReason::SysRegWrite {
            addr: SysRegAddr(0xc000_0103),
            value: 0x1234_5678_9abc_def0
        })
    );
    assert_eq!(r.rip(), CODE + 4);
}

/// EPT-violation qualifications: a data read / write of an unmapped page, with a valid
/// guest-linear address of the translated access.
const EPT_READ: u64 = 1 | (1 << 7) | (1 << 8);
const EPT_WRITE: u64 = 2 | (1 << 7) | (1 << 8);

#[test]
fn mmio_loads_and_stores_are_decoded_from_the_fetched_instruction() {
    // mov esi, dword ptr [rbx + 0x10]; mov byte ptr [rbx], ah
    let mut r = Rig::new(&[0x8b, 0x73, 0x10, 0x88, 0x23]);
    r.vcpu.set_gpr(gpr::RSI, u64::MAX as usize).expect("set");
    let addr = GuestPhysAddr::from(0xd000_0010usize);
    assert_eq!(
        r.ept(EPT_READ, 0xd000_0010),
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
        r.ept(EPT_WRITE, 0xd000_0000),
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
    let err = r.ept(EPT_WRITE, 0xd000_0000).expect_err("not a mov");
    assert_eq!(err.value(), Some(0x9090_9090_9090_0301));
}

#[test]
fn permission_fetch_and_walk_faults_are_nested_page_faults() {
    let mut r = Rig::new(&[]);
    let addr = GuestPhysAddr::from(0x5000usize);
    let npf = |access_flags| Ok(AxVCpuExitReason::NestedPageFault { addr, access_flags });
    // A write to a page mapped readable (bit 3).
    assert_eq!(r.ept(EPT_WRITE | (1 << 3), 0x5000), npf(AccessFlags::WRITE));
    // A read of an execute-only page (bit 5).
    assert_eq!(r.ept(EPT_READ | (1 << 5), 0x5000), npf(AccessFlags::READ));
    // A fetch from unmapped memory.
    assert_eq!(
        r.ept(4 | (1 << 7) | (1 << 8), 0x5000),
        npf(AccessFlags::EXECUTE)
    );
    // The guest's own page walk (linear address valid, not the translated access).
    assert_eq!(r.ept(1 | (1 << 7), 0x5000), npf(AccessFlags::READ));
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
    assert_eq!(r.ept(EPT_WRITE, 0xfee0_0310), Ok(AxVCpuExitReason::Nothing));
    assert_eq!(
        r.ept(EPT_WRITE, 0xfee0_0300),
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

/// The injection fields after `prepare_injection`: the entry interruption information
/// (which every VM exit clears) and whether interrupt-window exiting is on.
fn injection(r: &mut Rig) -> (u64, bool) {
    let v = r.vcpu.vmcs();
    v.write(ctrl::ENTRY_INTR_INFO, 0);
    r.vcpu.prepare_injection();
    let window = v.read(ctrl::PROC_BASED) as u32 & proc::INTERRUPT_WINDOW != 0;
    (v.read(ctrl::ENTRY_INTR_INFO), window)
}

const VALID: u64 = intr::VALID as u64;

#[test]
fn a_vector_injected_twice_before_the_guest_takes_it_is_delivered_once() {
    let mut r = Rig::new(&[]);
    assert!(VmxVCpu::<HeapHal>::check_interrupt_vector(31).is_err());
    assert!(VmxVCpu::<HeapHal>::check_interrupt_vector(256).is_err());
    r.vcpu.inject_interrupt(0x40).expect("inject");
    r.vcpu.inject_interrupt(0x40).expect("inject");
    r.vcpu.inject_interrupt(0x41).expect("inject");
    // Interrupts masked (RFLAGS = 2): a window is requested, nothing injected.
    assert_eq!(injection(&mut r), (0, true));
    assert!(r.vcpu.has_pending_interrupt());
    r.vcpu.vmcs().write(guest::RFLAGS, 0x202);
    assert_eq!(
        injection(&mut r),
        (0x41 | VALID, true),
        "highest first, window for the rest"
    );
    assert_eq!(injection(&mut r), (0x40 | VALID, false));
    assert_eq!(injection(&mut r), (0, false), "0x40 merged: taken once");
    assert!(!r.vcpu.has_pending_interrupt());
    // An STI shadow holds it too.
    r.vcpu.inject_interrupt(0x40).expect("inject");
    r.vcpu.vmcs().write(guest::INTERRUPTIBILITY, 1);
    assert_eq!(injection(&mut r), (0, true));
}

#[test]
fn an_event_cut_short_by_an_exit_is_delivered_again_as_it_was() {
    let mut r = Rig::new(&[]);
    let v = r.vcpu.vmcs();
    // A #GP (hardware exception 13) with error code 0x18, its delivery cut short.
    let gp = intr::VALID | intr::ERROR_CODE | (3 << 8) | 13;
    v.write(info::IDT_VECTORING_INFO, u64::from(gp) | (1 << 12));
    v.write(info::IDT_VECTORING_ERROR, 0x18);
    v.write(guest::RIP, CODE + 7);
    r.vcpu.after_exit();
    assert_eq!(r.rip(), CODE + 7);
    r.vcpu.inject_interrupt(0x50).expect("inject");
    r.vcpu.vmcs().write(guest::RFLAGS, 0x202);
    assert_eq!(
        injection(&mut r),
        (u64::from(gp), true),
        "the event first, bit 12 dropped"
    );
    assert_eq!(r.vcpu.vmcs().read(ctrl::ENTRY_EXCEPTION_ERROR), 0x18);
    v.write(info::IDT_VECTORING_INFO, 0);
    assert_eq!(injection(&mut r), (0x50 | VALID, false));
}

#[test]
fn a_vcpu_frees_its_frames() {
    let before = HeapHal::live_frames();
    drop(Rig::new(&[]));
    assert_eq!(HeapHal::live_frames(), before);
}

#[test]
fn the_fake_vmcs_slots_are_distinct_and_inside_the_frame() {
    let mut fields = std::vec::Vec::new();
    for m in [
        &[
            ctrl::VPID,
            ctrl::MSR_BITMAP,
            ctrl::EPTP,
            ctrl::PIN_BASED,
            ctrl::PROC_BASED2,
        ][..],
        &[ctrl::ENTRY_INSN_LEN, ctrl::CR0_MASK, ctrl::CR4_SHADOW],
        &[
            info::VM_INSTRUCTION_ERROR,
            info::EXIT_REASON,
            info::EXIT_INSN_LEN,
        ],
        &[info::GUEST_PHYSICAL_ADDR, info::EXIT_QUALIFICATION],
        &[
            guest::ES_SELECTOR + 14,
            guest::VMCS_LINK_POINTER,
            guest::EFER,
        ],
        &[
            guest::ES_LIMIT + 14,
            guest::SYSENTER_CS,
            guest::ES_BASE + 14,
        ],
        &[guest::SYSENTER_EIP, guest::RIP, guest::RSP, guest::RFLAGS],
        &[host::TR_SELECTOR, host::EFER, host::SYSENTER_CS, host::RIP],
    ] {
        fields.extend_from_slice(m);
    }
    let slots: std::collections::BTreeSet<usize> =
        fields.iter().map(|&f| crate::vmcs::test_slot(f)).collect();
    assert_eq!(slots.len(), fields.len());
    assert!(slots.iter().all(|&s| s < 512));
}

#[test]
fn an_injected_exception_replaces_a_read_and_rewinds_a_refused_wrmsr() {
    let mut r = Rig::new(&[]);
    r.vcpu.set_gpr(gpr::RCX, 0x3b).expect("set");
    assert!(matches!(
        r.exit(exit::RDMSR, 0, 2),
        Ok(AxVCpuExitReason::SysRegRead { .. })
    ));
    r.vcpu.inject_exception(13, Some(0)).expect("inject");
    assert!(r.vcpu.complete_read(0).is_err(), "the read was dropped");
    assert_eq!(r.rip(), CODE);
    assert!(matches!(
        r.exit(exit::WRMSR, 0, 2),
        Ok(AxVCpuExitReason::SysRegWrite { .. })
    ));
    assert_eq!(r.rip(), CODE + 2);
    r.vcpu.irq.reinject = None;
    r.vcpu.inject_exception(13, Some(0)).expect("inject");
    assert_eq!(r.rip(), CODE, "back on the wrmsr");
    let ev = r.vcpu.irq.reinject.expect("an event to deliver");
    assert_eq!(
        (ev.info, ev.error),
        (13 | (3 << 8) | (1 << 11) | (1 << 31), 0)
    );
    assert!(
        r.vcpu.inject_exception(6, None).is_err(),
        "one event at a time"
    );
    r.vcpu.irq.reinject = None;
    assert!(r.vcpu.inject_exception(2, None).is_err(), "NMI");
}

#[test]
fn efer_pat_cache_monitor_and_xsetbv_are_answered_inside() {
    let mut r = Rig::new(&[]);
    let efer = r.vcpu.vmcs().read(guest::EFER);
    r.vcpu.set_gpr(gpr::RCX, 0xc000_0080).expect("set");
    assert_eq!(r.exit(exit::RDMSR, 0, 2), Ok(AxVCpuExitReason::Nothing));
    assert_eq!(r.vcpu.get_gpr(gpr::RAX).expect("get") as u64, efer);
    r.vcpu
        .set_gpr(gpr::RAX, efer as usize | (1 << 11) | 1)
        .expect("set");
    r.vcpu.set_gpr(gpr::RDX, 0).expect("set");
    assert_eq!(r.exit(exit::WRMSR, 0, 2), Ok(AxVCpuExitReason::Nothing));
    assert_eq!(r.vcpu.vmcs().read(guest::EFER), efer | (1 << 11) | 1);
    assert_eq!(r.rip(), CODE + 4);
    r.vcpu.set_gpr(gpr::RCX, 0x277).expect("set");
    r.vcpu.set_gpr(gpr::RAX, 0x0106).expect("set");
    assert_eq!(r.exit(exit::WRMSR, 0, 2), Ok(AxVCpuExitReason::Nothing));
    assert_eq!(r.exit(exit::RDMSR, 0, 2), Ok(AxVCpuExitReason::Nothing));
    assert_eq!(r.vcpu.get_gpr(gpr::RAX).expect("get"), 0x0106);
    assert_eq!(r.rip(), CODE + 8);
    r.vcpu.set_gpr(gpr::RAX, 0x0102).expect("set");
    assert_eq!(r.exit(exit::WRMSR, 0, 2), Ok(AxVCpuExitReason::Nothing));
    assert_eq!(r.rip(), CODE + 8, "#GP: rip stays on the wrmsr");
    assert!(r.vcpu.irq.reinject.take().is_some());
    assert_eq!(r.exit(exit::WBINVD, 0, 2), Ok(AxVCpuExitReason::Nothing));
    assert_eq!(r.exit(exit::INVD, 0, 2), Ok(AxVCpuExitReason::Nothing));
    assert_eq!(r.rip(), CODE + 12);
    assert_eq!(r.exit(exit::MWAIT, 0, 3), Ok(AxVCpuExitReason::Nothing));
    assert_eq!(r.vcpu.irq.reinject.take().map(|e| e.info & 0xff), Some(6));
    assert_eq!(r.exit(exit::XSETBV, 0, 3), Ok(AxVCpuExitReason::Nothing));
    assert_eq!(r.vcpu.irq.reinject.take().map(|e| e.info & 0xff), Some(13));
    assert_eq!(r.rip(), CODE + 12);
}

#[test]
fn misc_enable_reads_its_fixed_value_and_refuses_a_change() {
    let mut r = Rig::new(&[]);
    r.vcpu.set_gpr(gpr::RCX, 0x1a0).expect("set");
    assert_eq!(r.exit(exit::RDMSR, 0, 2), Ok(AxVCpuExitReason::Nothing));
    let fixed = axvcpu_x86::msr::GUEST_MISC_ENABLE;
    assert_eq!(
        r.vcpu.get_gpr(gpr::RAX).expect("get") as u64,
        fixed & 0xffff_ffff
    );
    assert_eq!(r.vcpu.get_gpr(gpr::RDX).expect("get") as u64, fixed >> 32);
    assert_eq!(r.exit(exit::WRMSR, 0, 2), Ok(AxVCpuExitReason::Nothing));
    assert!(r.vcpu.irq.reinject.is_none(), "the same value is taken");
    assert_eq!(r.rip(), CODE + 4);
    r.vcpu
        .set_gpr(gpr::RAX, (fixed | (1 << 22)) as usize)
        .expect("set");
    assert_eq!(r.exit(exit::WRMSR, 0, 2), Ok(AxVCpuExitReason::Nothing));
    assert_eq!(r.rip(), CODE + 4, "#GP: rip stays on the wrmsr");
    assert_eq!(r.vcpu.irq.reinject.take().map(|e| e.info & 0xff), Some(13));
}

#[test]
fn cr_writes_of_fixed_bits_fault_or_go_to_the_shadow() {
    let mut r = Rig::new(&[]);
    let c = bochs_controls();
    // mov cr4, rax with VMXE (0x2000): #GP(0), CR4 unchanged, rip on the instruction.
    let cr4 = r.vcpu.vmcs().read(guest::CR4);
    r.vcpu.set_gpr(gpr::RAX, 0x2020).expect("set");
    assert_eq!(r.exit(exit::CR_ACCESS, 4, 3), Ok(AxVCpuExitReason::Nothing));
    assert_eq!(r.vcpu.irq.reinject.take().map(|e| e.info & 0xff), Some(13));
    assert_eq!((r.vcpu.vmcs().read(guest::CR4), r.rip()), (cr4, CODE));
    // mov cr0, rcx clearing NE: the guest reads its value, the CPU keeps NE.
    r.vcpu.set_gpr(gpr::RCX, 0x11).expect("set");
    assert_eq!(
        r.exit(exit::CR_ACCESS, 1 << 8, 3),
        Ok(AxVCpuExitReason::Nothing)
    );
    assert!(r.vcpu.irq.reinject.is_none());
    assert_eq!(r.vcpu.vmcs().read(ctrl::CR0_SHADOW), 0x11);
    assert_eq!(r.vcpu.vmcs().read(guest::CR0), 0x11 | c.cr0_set);
    assert_eq!(r.rip(), CODE + 3);
    // PG without PE: #GP(0).
    r.vcpu.set_gpr(gpr::RCX, 0x8000_0010).expect("set");
    assert_eq!(
        r.exit(exit::CR_ACCESS, 1 << 8, 3),
        Ok(AxVCpuExitReason::Nothing)
    );
    assert_eq!(r.vcpu.irq.reinject.take().map(|e| e.info & 0xff), Some(13));
    // Paging turned on again (EFER.LME and CR4.PAE set): long mode, as before.
    r.vcpu.set_gpr(gpr::RCX, 0x8000_0011).expect("set");
    assert_eq!(
        r.exit(exit::CR_ACCESS, 1 << 8, 3),
        Ok(AxVCpuExitReason::Nothing)
    );
    assert!(r.vcpu.irq.reinject.is_none());
    assert_eq!(r.vcpu.vmcs().read(guest::CR0), 0x8000_0011 | c.cr0_set);
    // lmsw 9 (qualification bits 31:16): TS set, PE kept though the operand clears it.
    assert_eq!(
        r.exit(exit::CR_ACCESS, (3 << 4) | (9 << 16), 3),
        Ok(AxVCpuExitReason::Nothing)
    );
    assert_eq!(r.vcpu.vmcs().read(ctrl::CR0_SHADOW), 0x8000_0019);
    // clts: TS clear again.
    assert_eq!(
        r.exit(exit::CR_ACCESS, 2 << 4, 2),
        Ok(AxVCpuExitReason::Nothing)
    );
    assert_eq!(r.vcpu.vmcs().read(ctrl::CR0_SHADOW), 0x8000_0011);
    // CR3 does not exit under EPT: an exit for it is an error, not a guess.
    assert!(r.exit(exit::CR_ACCESS, 3, 3).is_err());
}

#[test]
fn cr8_reads_back_what_the_guest_wrote_and_refuses_reserved_bits() {
    let mut r = Rig::new(&[]);
    // mov cr8, rax (5), then mov rdx, cr8.
    r.vcpu.set_gpr(gpr::RAX, 5).expect("set");
    assert_eq!(r.exit(exit::CR_ACCESS, 8, 4), Ok(AxVCpuExitReason::Nothing));
    assert_eq!(
        r.exit(exit::CR_ACCESS, 8 | (1 << 4) | (2 << 8), 4),
        Ok(AxVCpuExitReason::Nothing)
    );
    assert_eq!(r.vcpu.get_gpr(gpr::RDX).expect("get"), 5);
    assert_eq!(r.rip(), CODE + 8);
    // A priority above 15: #GP(0), rip stays.
    r.vcpu.set_gpr(gpr::RAX, 16).expect("set");
    assert_eq!(r.exit(exit::CR_ACCESS, 8, 4), Ok(AxVCpuExitReason::Nothing));
    assert_eq!(r.vcpu.irq.reinject.take().map(|e| e.info & 0xff), Some(13));
    assert_eq!(r.rip(), CODE + 8);
}

#[test]
fn vmx_and_smx_instructions_are_undefined_for_the_guest() {
    let mut r = Rig::new(&[]);
    for reason in [
        exit::GETSEC,
        exit::VMCLEAR,
        23,
        exit::VMXON,
        exit::INVEPT,
        exit::INVVPID,
        exit::VMFUNC,
    ] {
        assert_eq!(
            r.exit(reason, 0, 3),
            Ok(AxVCpuExitReason::Nothing),
            "exit {reason}"
        );
        assert_eq!(
            r.vcpu.irq.reinject.take().map(|e| e.info & 0xff),
            Some(6),
            "exit {reason}: #UD"
        );
        assert_eq!(r.rip(), CODE, "exit {reason}: rip on the instruction");
    }
}

impl Rig {
    /// A vCPU set up in real mode at [`CODE`] (a SIPI address: CS 0x100), its VMCS filled.
    fn real_mode(code: &[u8]) -> Self {
        let mut r = Self::new(code);
        r.vcpu
            .setup(VmxSetupConfig {
                boot: GuestBoot::RealMode,
                ..VmxSetupConfig::default()
            })
            .expect("setup");
        r.vcpu.init_vmcs(bochs_controls()).expect("init");
        r
    }
}

#[test]
fn a_real_mode_start_is_the_state_after_init_and_sipi() {
    let r = Rig::real_mode(&[]);
    let v = r.vcpu.vmcs();
    let c = bochs_controls();
    assert_eq!(r.rip(), 0);
    assert_eq!(v.read(guest::RIP), 0);
    assert_eq!(v.read(guest::ES_SELECTOR + 2), 0x100, "CS");
    assert_eq!(v.read(guest::ES_BASE + 2), CODE, "CS base");
    assert_eq!(v.read(guest::ES_LIMIT + 2), 0xffff);
    assert_eq!(v.read(guest::ES_ACCESS_RIGHTS + 2), 0x9b, "16-bit code");
    assert_eq!(v.read(guest::ES_ACCESS_RIGHTS + 4), 0x93, "SS");
    assert_eq!(
        v.read(guest::ES_ACCESS_RIGHTS + 12),
        1 << 16,
        "LDTR unusable"
    );
    assert_eq!(v.read(guest::ES_ACCESS_RIGHTS + 14), 0x8b, "TR busy TSS");
    assert_eq!(v.read(guest::IDTR_LIMIT), 0xffff);
    assert_eq!(v.read(guest::EFER), 0);
    assert_eq!(v.read(ctrl::ENTRY_CONTROLS), u64::from(c.entry & !(1 << 9)));
    assert_eq!(v.read(ctrl::CR0_SHADOW), axvcpu_x86::boot::INIT_CR0);
    assert_eq!(
        v.read(guest::CR0),
        axvcpu_x86::boot::INIT_CR0 | c.cr0_set,
        "NE kept"
    );
    assert_eq!(
        v.read(ctrl::CR0_MASK) & (1 << 31),
        1 << 31,
        "PG changes exit"
    );
    assert_eq!(v.read(ctrl::CR4_SHADOW), 0);
    assert!(!v.in_64bit_code());
    // Only a SIPI's address.
    let mut bad = Rig::new(&[]);
    bad.vcpu
        .set_entry(GuestPhysAddr::from(0x1010usize))
        .expect("entry");
    let e = bad
        .vcpu
        .setup(VmxSetupConfig {
            boot: GuestBoot::RealMode,
            ..VmxSetupConfig::default()
        })
        .expect_err("not 4 KiB aligned");
    assert_eq!(e.kind(), AxErrorKind::InvalidInput);
}

#[test]
fn real_mode_to_long_mode_and_back_moves_lma_and_the_entry_control() {
    const EFER: usize = 0xc000_0080;
    const IA32E: u64 = 1 << 9;
    let mut r = Rig::real_mode(&[]);
    let c = bochs_controls();
    let v = r.vcpu.vmcs();
    // Protected mode, set without an exit; EFER.LME through wrmsr.
    v.write(guest::CR0, 0x11 | c.cr0_set);
    r.vcpu.set_gpr(gpr::RCX, EFER).expect("set");
    r.vcpu.set_gpr(gpr::RAX, 0x100).expect("set");
    r.vcpu.set_gpr(gpr::RDX, 0).expect("set");
    assert_eq!(r.exit(exit::WRMSR, 0, 2), Ok(AxVCpuExitReason::Nothing));
    assert_eq!(v.read(guest::EFER), 0x100);
    assert_eq!(v.read(ctrl::ENTRY_CONTROLS) & IA32E, 0);
    // Paging on without CR4.PAE: #GP(0), nothing changes.
    r.vcpu.set_gpr(gpr::RAX, 0x8000_0031).expect("set");
    assert_eq!(r.exit(exit::CR_ACCESS, 0, 3), Ok(AxVCpuExitReason::Nothing));
    assert_eq!(r.vcpu.irq.reinject.take().map(|e| e.info & 0xff), Some(13));
    assert_eq!(v.read(guest::CR0), 0x11 | c.cr0_set);
    // With PAE: IA-32e mode (compatibility mode: CS.L still 0).
    v.write(guest::CR4, (1 << 5) | c.cr4_set);
    let rip = r.rip();
    assert_eq!(r.exit(exit::CR_ACCESS, 0, 3), Ok(AxVCpuExitReason::Nothing));
    assert!(r.vcpu.irq.reinject.is_none());
    assert_eq!(r.rip(), rip + 3);
    assert_eq!(v.read(guest::CR0), 0x8000_0031 | c.cr0_set);
    assert_eq!(v.read(ctrl::CR0_SHADOW), 0x8000_0031);
    assert_eq!(v.read(guest::EFER), 0x500, "LMA");
    assert_eq!(v.read(ctrl::ENTRY_CONTROLS) & IA32E, IA32E);
    // LME may not change while paging is on.
    r.vcpu.set_gpr(gpr::RAX, 0).expect("set");
    assert_eq!(r.exit(exit::WRMSR, 0, 2), Ok(AxVCpuExitReason::Nothing));
    assert_eq!(r.vcpu.irq.reinject.take().map(|e| e.info & 0xff), Some(13));
    assert_eq!(v.read(guest::EFER), 0x500);
    // Paging off from 64-bit code: #GP(0); from compatibility mode: IA-32e mode left.
    v.write(guest::ES_ACCESS_RIGHTS + 2, 0xa09b);
    r.vcpu.set_gpr(gpr::RAX, 0x31).expect("set");
    assert_eq!(r.exit(exit::CR_ACCESS, 0, 3), Ok(AxVCpuExitReason::Nothing));
    assert_eq!(r.vcpu.irq.reinject.take().map(|e| e.info & 0xff), Some(13));
    assert_eq!(v.read(guest::EFER), 0x500);
    v.write(guest::ES_ACCESS_RIGHTS + 2, 0xc09b);
    assert_eq!(r.exit(exit::CR_ACCESS, 0, 3), Ok(AxVCpuExitReason::Nothing));
    assert!(r.vcpu.irq.reinject.is_none());
    assert_eq!(v.read(guest::EFER), 0x100);
    assert_eq!(v.read(ctrl::ENTRY_CONTROLS) & IA32E, 0);
    assert_eq!(v.read(guest::CR0), 0x31 | c.cr0_set);
}

#[test]
fn real_mode_port_io_is_decoded_and_mmio_refused() {
    // mov byte ptr [bx], al (16-bit code: 64-bit decoding would misread it)
    let mut r = Rig::real_mode(&[0x88, 0x07]);
    r.vcpu.set_gpr(gpr::RAX, 0x5a).expect("set");
    assert_eq!(
        r.exit(exit::IO, io(0x80, 1, false), 2),
        Ok(AxVCpuExitReason::IoWrite {
            port: Port(0x80),
            width: AccessWidth::Byte,
            data: 0x5a
        })
    );
    assert_eq!(r.rip(), 2);
    let e = r.ept(EPT_WRITE, 0xfee0_0000).expect_err("16-bit MMIO");
    assert_eq!(e.kind(), AxErrorKind::Unsupported);
    assert_eq!(e.value(), Some(0xfee0_0000));
}

#[test]
fn an_exception_injected_in_real_mode_carries_no_error_code() {
    let mut r = Rig::real_mode(&[]);
    r.vcpu.inject_exception(13, Some(0)).expect("inject");
    r.vcpu.prepare_injection();
    let info = r.vcpu.vmcs().read(ctrl::ENTRY_INTR_INFO) as u32;
    assert_eq!(
        info & (intr::VALID | intr::ERROR_CODE | 0xff),
        intr::VALID | 13
    );
}

#[test]
fn without_unrestricted_guest_paging_and_protection_stay_on() {
    let mut r = Rig::new(&[]);
    let mut caps = VmxCaps::read(|m| {
        BOCHS_CAPS
            .iter()
            .find(|&&(n, _)| n == m)
            .map_or(0, |&(_, v)| v)
    });
    caps.proc2 &= !(u64::from(crate::controls::proc2::UNRESTRICTED_GUEST) << 32);
    let c = Controls::compute(&caps).expect("long-mode guests run without it");
    r.vcpu.init_vmcs(c).expect("init");
    let v = r.vcpu.vmcs();
    assert_eq!(v.read(ctrl::CR0_MASK) & 0x8000_0001, 0x8000_0001);
    // Clearing NE alone still goes to the shadow; turning paging off is refused.
    r.vcpu.set_gpr(gpr::RAX, 0x8001_0013).expect("set");
    assert_eq!(r.exit(exit::CR_ACCESS, 0, 3), Ok(AxVCpuExitReason::Nothing));
    r.vcpu.set_gpr(gpr::RAX, 0x31).expect("set");
    let e = r.exit(exit::CR_ACCESS, 0, 3).expect_err("paging off");
    assert_eq!(
        (e.kind(), e.value()),
        (AxErrorKind::Unsupported, Some(0x31))
    );
}
